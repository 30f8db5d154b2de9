"""Fault injection: kills, damaged files, bad settings, non-finite numbers, full disks."""

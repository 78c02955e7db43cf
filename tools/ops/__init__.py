"""The host-side CLI for the verbs ops run on the VM (`./ops VERB`): deploy, rollback, status,
backup, backups, restore and schedule.

Standard library only, Python 3.10 or newer: the VM needs Docker with compose and Python, no
packages. Every verb says which step it is on, ends with one summary line, and exits non-zero
with the reason on failure (tools/ops/console.py).
"""

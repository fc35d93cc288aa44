"""Shadowdesk's entrypoint: the ``shadowdesk`` CLI and its commands (demo, accounts, fsck).

Shared helpers live in ``shadowdesk_common``; the cloud tier's modules are imported only by the commands
that need them, so ``shadowdesk agent`` runs on an install without the ``cloud`` extra.
"""

"""Allows `python -m mailbot`."""

from mailbot.cli import main

raise SystemExit(main())

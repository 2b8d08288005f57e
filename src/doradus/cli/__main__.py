"""``python -m doradus.cli`` runs the command line."""

from doradus.cli import main

main()

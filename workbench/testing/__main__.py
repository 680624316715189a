"""``python -m workbench.testing --port 8999 --latency 0.05 --rpm 1200``: a fake backend on loopback."""

from .server import main

main()

"""The worker process the extension launches: `python -m riemannlora.worker run|validate|doctor`.

See README.md in this folder for the command line, the event stream, the run directory and the faults.
"""

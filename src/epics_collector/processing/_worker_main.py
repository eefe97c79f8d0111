"""``python -m epics_collector.processing._worker_main PARENT_PID``: a processor worker."""

from epics_collector.processing._worker import main

if __name__ == "__main__":
    main()

from epics_collector.cli import main

main()

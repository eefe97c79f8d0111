from epics_collector.sim._ioc import main

main()

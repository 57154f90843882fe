from kohya_orchestrator.cli.main import main

raise SystemExit(main())

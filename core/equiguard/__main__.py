from equiguard.cli import main

raise SystemExit(main())

from emsh.cli import main

raise SystemExit(main())

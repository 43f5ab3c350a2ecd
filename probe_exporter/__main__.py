from probe_exporter.cli import main

raise SystemExit(main())

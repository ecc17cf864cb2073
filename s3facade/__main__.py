from s3facade.cli import main

raise SystemExit(main())

import sys

from kzai_guard.cli.main import main

sys.exit(main())

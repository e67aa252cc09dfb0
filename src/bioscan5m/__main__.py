import sys

from bioscan5m.cli import main

sys.exit(main())

import sys

from caredesk.cli import main

sys.exit(main())

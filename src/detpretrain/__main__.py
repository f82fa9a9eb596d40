import sys

from detpretrain.cli import main

sys.exit(main())

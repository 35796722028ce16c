import sys

from tests.lab.run import main

sys.exit(main())

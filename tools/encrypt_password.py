"""Create or update a dashboard user with a bcrypt-hashed password (read from stdin when not a TTY).

Usage: python tools/encrypt_password.py --home DIR --username NAME --role ROLE
Same as `tbot users add`.
"""

import sys

from rigd_tbot.cli import main

if __name__ == "__main__":
    sys.exit(main(["users", "add", *sys.argv[1:]]))

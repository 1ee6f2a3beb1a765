"""Offline stand-in for the get-pip.py that ansible-test sanity bootstraps its venvs with.

ansible-test downloads get-pip from a host that is unreachable here; this file is
copied to ~/.ansible/test/cache/get_pip_<version>.py by `make setup`.  It seeds pip
from the interpreter's own ensurepip and then installs what ansible-test asked for
from the configured package index.
"""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip.bootstrap() would set PIP_CONFIG_FILE=/dev/null in
# this process and hide the machine's pip configuration (index, CA bundle).
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
if args:
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))

"""Python runs this at start-up in every process the tests start (conftest.py puts this folder on
PYTHONPATH): the network fence of loopback_only.py."""
import loopback_only

loopback_only.install()

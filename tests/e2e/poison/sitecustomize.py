"""Run by Python at start-up in a service process whose PYTHONPATH names this folder (the
e2e poison tests): poisons the consumers for the messages TEST_POISON_MARKS names."""

from tests.poison import install_from_env

install_from_env()

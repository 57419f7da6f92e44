from pigeon.cli import entry

entry()

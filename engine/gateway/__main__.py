"""`python -m engine.gateway ...`: the same as `tensorflux gateway ...`."""

import argparse
import sys

from engine.cli import client

parser = argparse.ArgumentParser(prog="python -m engine.gateway")
client.register(parser.add_subparsers(dest="command"))
raise SystemExit(client.run_gateway_command(parser.parse_args(["gateway", *sys.argv[1:]])))

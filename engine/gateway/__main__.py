"""`python -m engine.gateway ...`: the same as `tensorflux gateway ...`."""

import argparse
import sys

from engine.cli import gateway

parser = argparse.ArgumentParser(prog="python -m engine.gateway")
gateway.register(parser.add_subparsers(dest="command"))
raise SystemExit(gateway.run_gateway_command(parser.parse_args(["gateway", *sys.argv[1:]])))

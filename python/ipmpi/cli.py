"""The command lines: ipmpi-plot, ipmpi-export, and python3 -m ipmpi.

Every failure the user can act on (a missing file, an option the run cannot
satisfy, a Python without numpy, netCDF4, xarray or matplotlib) is one line
on stderr, "PROGRAM: ...", and exit status 1; never a traceback.
"""
import argparse
import os
import sys

from .deps import MissingDependency, require_all
from .errors import PlotError, RefusedError, RunError
from .estimators import ESTIMATORS
from .files import refuse_precious

FORMATS = (".png", ".pdf", ".svg")


class UsageError(Exception):
    """A request that cannot be met, said in one line."""


def plot_parser(prog="ipmpi-plot"):
    parser = argparse.ArgumentParser(
        prog=prog, description="Plot the information plane (or training curves) of an ipmpi run; "
        "works on a run still being written.")
    parser.add_argument("run", help="the run's NetCDF file")
    parser.add_argument("-o", "--output", help="output image, format from the extension "
                        "(.png, .pdf, .svg); default RUN.png beside the run")
    parser.add_argument("--estimator", choices=ESTIMATORS + ("all",),
                        help="default: pooled if present, else sampled, simple, kde_upper; "
                        "*_mm: Miller-Madow corrected; all: one panel per estimator the run "
                        "computed")
    parser.add_argument("--layers", help="1-based layers to show, e.g. 1,3-5 (default all measured)")
    parser.add_argument("--epochs", metavar="A:B", help="inclusive epoch range, either side optional")
    parser.add_argument("--test", action="store_true", help="the held-out (test) plane")
    parser.add_argument("--curves", action="store_true",
                        help="loss, accuracy and I(X;T), I(T;Y) against epoch instead of the plane")
    parser.add_argument("--snr", action="store_true",
                        help="each layer's gradient mean and std norms against epoch (log-log): "
                        "the drift and diffusion phases")
    parser.add_argument("--color-by", "--colour-by", dest="color_by", choices=("epoch", "layer"),
                        default="epoch", help="plane: colour the points by epoch (default; each "
                        "layer has its own marker) or give every layer a colour of its own")
    parser.add_argument("--style", choices=("trajectories", "epochs"), default="trajectories",
                        help="plane: one trajectory per layer (default), or the paper's figure: "
                        "the layers of each epoch joined by a line coloured by the epoch")
    return parser


def plot_output(args):
    if args.snr and (args.curves or args.test):
        raise UsageError("--snr draws the training gradients: it takes neither --curves nor --test")
    if args.output:
        out = args.output
    else:
        stem = args.run[:-3] if args.run.endswith(".nc") else args.run
        out = stem + ("-curves" if args.curves else "") + ("-snr" if args.snr else "") + \
            ("-test" if args.test else "") + ".png"
    if os.path.splitext(out)[1].lower() not in FORMATS:
        raise UsageError(f"{out}: unsupported format (use {', '.join(FORMATS)})")
    return out


def plot(args):
    """Draws and writes the figure the arguments ask for; returns its path."""
    out = plot_output(args)
    refuse_precious(out, args.run)
    require_all()
    import matplotlib
    matplotlib.use("Agg")       # headless: files only
    from . import plot as figures
    from .run import open_run
    ds = open_run(args.run)
    if args.snr:
        fig = figures.snr(ds, args.layers, args.epochs)
    elif args.curves:
        fig = figures.curves(ds, args.estimator, args.layers, args.epochs, args.test)
    else:
        fig = figures.plane(ds, args.estimator, args.layers, args.epochs, args.test,
                            color_by=args.color_by, style=args.style)
    try:
        figures.save(fig, out)
    except (OSError, ValueError) as e:
        raise UsageError(f"{out}: cannot write ({e})") from None
    finally:
        figures.common.pyplot().close(fig)
    return out


def export_parser(prog="ipmpi-export"):
    parser = argparse.ArgumentParser(
        prog=prog, description="Export an ipmpi run as tidy long-form CSV: one row per value, "
        "columns epoch, replica, layer, estimator, quantity, value.")
    parser.add_argument("run", help="the run's NetCDF file")
    parser.add_argument("--csv", action="store_true", help="CSV (the only format, and the default)")
    parser.add_argument("-o", "--output", help="the CSV file; - for stdout; default RUN.csv "
                        "beside the run")
    return parser


def export(args):
    """Writes the CSV; returns (path, rows)."""
    out = args.output or (args.run[:-3] if args.run.endswith(".nc") else args.run) + ".csv"
    refuse_precious(out, args.run)
    require_all("numpy", "netCDF4", "xarray")
    from .export import write_csv
    from .run import open_run
    ds = open_run(args.run)
    if ds.sizes.get("epoch", 0) == 0:   # as ipmpi-plot: an earlier CSV is not replaced by nothing
        raise RunError(f"{args.run}: the run has no logged epochs yet (0 records); nothing written")
    if out == "-":
        return out, write_csv(ds, sys.stdout)
    try:
        return out, write_csv(ds, out)
    except OSError as e:
        raise UsageError(f"{out}: cannot write ({e.strerror or e})") from None


def run_command(prog, parser, action, argv, report):
    args = parser.parse_args(argv)
    try:
        result = action(args)
    except (UsageError, RunError, PlotError, RefusedError, MissingDependency) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:     # the reader of stdout left early (| head): what it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0                # asked for, it had; no error (status 1 is for errors)
    message = report(result)
    if message:
        print(message)
    return 0


def plot_main(argv=None, prog="ipmpi-plot"):
    return run_command(prog, plot_parser(prog), plot, argv, lambda out: f"wrote {out}")


def export_main(argv=None, prog="ipmpi-export"):
    return run_command(prog, export_parser(prog), export, argv,
                       lambda res: None if res[0] == "-" else f"wrote {res[0]} ({res[1]} rows)")


COMMANDS = {"plot": plot_main, "export": export_main}


def main(argv=None):
    """python3 -m ipmpi COMMAND ...: plot (as ipmpi-plot) or export (as ipmpi-export)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print("usage: python3 -m ipmpi {plot,export} RUN.nc [options]   (--help after the "
              "command for its options)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:], prog=f"python3 -m ipmpi {argv[0]}")

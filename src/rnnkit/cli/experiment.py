"""`rnnkit experiment NAME [--quick] [--out DIR] [--seed N] [--text FILE]`: the classic claims, measured.

    vanishing   gradient norm against distance (RNN, LSTM, GRU; init and trained); the adding
                problem at T = 50, 100, 200           -> vanishing.png, vanishing_adding.png
    negation    bag of words vs a GRU on negated and contrasted sentences   -> negation.png
    cells       RNN, LSTM, GRU, LN-LSTM, LN-GRU, minGRU, minLSTM: char-level LMs (parameters,
                speed, loss; --text FILE or the standard library) and the adding problem -> cells.png

Each prints its table(s) and writes its PNG(s) into --out; the work is rnnkit.experiments'.
"""
import argparse

from .. import experiments

SUMMARY = {
    "vanishing": "gradient norm vs distance; the adding problem at T = 50, 100, 200 (~1 min)",
    "negation": "bag of words vs a GRU on sentences with negation and contrast (~20 s)",
    "cells": "RNN/LSTM/GRU, LN-LSTM/GRU, minGRU/LSTM: char-level LM and adding problem (~9 min)",
}


def experiment(args):
    """Run the named experiment and say where its pictures went."""
    options = {"text": args.text} if args.text is not None else {}
    result = experiments.run(args.name, quick=args.quick, out_dir=args.out, seed=args.seed,
                             progress=not args.quiet, **options)
    pngs = [v for k, v in result.items() if k.endswith("png") and v]
    print("wrote " + ", ".join(pngs))
    return 0


def register(sub):
    """Add the `experiment` command."""
    names = experiments.names()
    p = sub.add_parser("experiment", help="run an experiment: " + ", ".join(names),
                       description="Experiments that show what the classic texts claim:\n" +
                       "\n".join(f"  {n:<10} {SUMMARY.get(n, '')}" for n in names),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=names, metavar="NAME", help="which experiment: " + ", ".join(names))
    p.add_argument("--quick", action="store_true", help="a much smaller version (seconds), for a first look")
    p.add_argument("--out", default=".", metavar="DIR", help="folder for the PNG files (default: .)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no training progress bars")
    p.add_argument("--text", metavar="FILE", help="cells only: a UTF-8 text for the language model, first 90%% "
                   "train, last 10%% validation (default: Python standard-library source)")
    p.set_defaults(func=experiment)

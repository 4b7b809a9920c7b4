from __future__ import annotations


def add_parser(sub, name):
    p = sub.add_parser(name, help="start TensorBoard on a runs folder (absolute path, free port)",
                       description="Start TensorBoard on a runs folder (its absolute path, on the port given or the "
                                   "next free one) and print its URL. Ctrl-C, SIGTERM or the end of this command "
                                   "stops TensorBoard too.")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of runs (default: runs)")
    p.add_argument("--port", type=int, default=6006, help="preferred port; the next free one is used if taken")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import board
    code, _url = board(args.runs_dir, args.port, args.host)
    return code

"""`switchboard eval …`: accuracy measured on material made at run time (speech to text,
grounded answers, barge-in)."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.config import paths


def cmd_eval(args: argparse.Namespace) -> int:
    if args.eval_command == "answers":
        from appliance.bench.answer_eval import cli_main as answers_main

        return answers_main(args.model or ["smollm2-135m"], paths.data_dir(args.data_dir),
                            Path(args.json) if args.json else None, args.baseline,
                            args.model_phrases, args.set)
    if args.eval_command == "bargein":
        from appliance.bench.bargein_eval import cli_main as bargein_main

        return bargein_main(args.model, paths.data_dir(args.data_dir),
                            Path(args.json) if args.json else None, args.seed,
                            args.min_speech, args.backchannel_max)
    from appliance.bench.stt_eval import cli_main

    return cli_main(args.model, paths.data_dir(args.data_dir),
                    Path(args.json) if args.json else None, args.limit, args.seed,
                    args.sentences, args.words)



def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """The ``eval`` command and its subcommands."""
    p = sub.add_parser("eval", help="measure accuracy on generated test material")
    esub = p.add_subparsers(dest="eval_command", required=True)
    e = esub.add_parser("stt", help="speech-to-text word error rate and latency on phone "
                        "speech generated at run time (voices, G.711, noise, packet loss)")
    e.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    e.add_argument("--limit", type=int, help="transcribe only the first N clips")
    e.add_argument("--model", default="moonshine-base-en",
                   help="speech-to-text model: a name in the model store, a ggml file or a "
                   "Moonshine encoder.onnx")
    e.add_argument("--seed", type=int, default=7, help="corpus seed (default 7)")
    e.add_argument("--sentences", type=int, default=96,
                   help="sentences, each sent through 5 line conditions (default 96)")
    e.add_argument("--words", action="store_true",
                   help="transcribe the clips again with a clinic's words favoured (its staff, "
                   "insurers, services, drugs), as its agent would, and report both")
    e.set_defaults(func=cmd_eval)
    e = esub.add_parser("answers", help="grounded answers: questions to a clinic agent "
                        "through the answering rules and a language model, scored for facts, "
                        "invented facts, identity confusion and cut answers")
    e.add_argument("--model", action="append", help="language model: a name in the model "
                   "store or a GGUF file (repeat to compare; default smollm2-135m)")
    e.add_argument("--baseline", action="store_true",
                   help="also score the model alone (same prompt, no answering rules)")
    e.add_argument("--set", action="append", help="question set (repeat; default all)")
    e.add_argument("--model-phrases", action="store_true",
                   help="let the model put a matched fact in words (default: say it as written)")
    e.add_argument("--json", metavar="FILE", help="write every answer and score as JSON")
    e.set_defaults(func=cmd_eval)
    e = esub.add_parser("bargein", help="sounds over the agent's answer (backchannels, "
                        "interruptions, coughs, line noise; several voices, G.711): answers "
                        "lost, interruptions missed, how soon the agent holds and goes on")
    e.add_argument("--model", default="moonshine-base-en",
                   help="speech-to-text model that judges the words (default: the agents')")
    e.add_argument("--seed", type=int, default=11, help="noise seed (default 11)")
    e.add_argument("--min-speech", type=float, default=None,
                   help="barge_in.min_speech to measure (default: the agents' default for "
                   "the model, 0.15 with Moonshine, 0.3 with Whisper)")
    e.add_argument("--backchannel-max", type=float, default=1.2,
                   help="barge_in.backchannel_max to measure (default 1.2; 0: no judging)")
    e.add_argument("--json", metavar="FILE", help="write every outcome as JSON")
    e.set_defaults(func=cmd_eval)

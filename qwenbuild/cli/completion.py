"""`qwenbuild completion bash|zsh|fish`: a shell completion script, made from the parser.

The script is static (commands, options, and files for CAMPAIGN and IMAGE), so completing
never starts Python. Install: `qwenbuild completion bash > ~/.local/share/bash-completion/
completions/qwenbuild`, `qwenbuild completion zsh > ~/.zfunc/_qwenbuild`, or `qwenbuild
completion fish > ~/.config/fish/completions/qwenbuild.fish`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, Parser

NAME = "completion"
SHELLS = ("bash", "zsh", "fish")


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="print a shell completion script (bash, zsh, fish)",
        description="Print a completion script for SHELL: commands, their options, and "
                    "file names where a command takes a file. See the README for where to "
                    "put it.")
    p.add_argument("shell", metavar="SHELL", choices=SHELLS, help=" | ".join(SHELLS))
    return p


def commands(parser: argparse.ArgumentParser) -> dict[str, tuple[list[str], bool]]:
    """command (or `cache gc`) -> (its options, whether it takes a file argument)."""
    found: dict[str, tuple[list[str], bool]] = {}

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prefix} {name}".strip())
        subcommands = [name for action in p._actions
                       if isinstance(action, argparse._SubParsersAction)
                       for name in action.choices]
        if prefix and subcommands:
            found[prefix] = (subcommands, False)
        elif prefix:
            options = sorted(s for a in p._actions for s in a.option_strings
                             if a.help != argparse.SUPPRESS)
            takes_file = any(not a.option_strings and a.metavar in ("CAMPAIGN", "IMAGE",
                                                                    "DIR", "ROOT")
                             for a in p._actions)
            found[prefix] = (options, takes_file)

    walk(parser, "")
    return found


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    table = commands(parser)
    top = sorted(name for name in table if " " not in name)
    if shell == "bash":
        cases = "\n".join(
            f'        "{name}") opts="{" ".join(opts)}"; files={int(files)} ;;'
            for name, (opts, files) in sorted(table.items()))
        return f'''# bash completion for qwenbuild (qwenbuild completion bash)
_qwenbuild() {{
    local cur cmd opts files i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in -*) ;; *) cmd="${{cmd:+$cmd }}${{COMP_WORDS[i]}}" ;; esac
    done
    case "$cmd" in
        "") COMPREPLY=($(compgen -W "{" ".join(top)} --help --version -v -q --json" -- "$cur"))
            return ;;
{cases}
        *) opts=""; files=1 ;;
    esac
    if [[ "$cur" == -* || $files -eq 0 ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _qwenbuild qwenbuild
'''
    if shell == "zsh":
        lines = [f"    '{name}:{_help(parser, name)}'" for name in top]
        cases = "\n".join(
            f"        ({name}) _arguments {' '.join(repr(o) for o in opts)}"
            + (" '*:file:_files'" if files else "") + " ;;"
            for name, (opts, files) in sorted(table.items()) if " " not in name)
        return f'''#compdef qwenbuild
# zsh completion for qwenbuild (qwenbuild completion zsh)
_qwenbuild() {{
  local -a commands
  commands=(
{chr(10).join(lines)}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  case $words[2] in
{cases}
  esac
}}
_qwenbuild "$@"
'''
    lines = ["# fish completion for qwenbuild (qwenbuild completion fish)",
             "complete -c qwenbuild -f"]
    for name in top:
        lines.append(f"complete -c qwenbuild -n '__fish_use_subcommand' -a {name} "
                     f"-d '{_help(parser, name)}'")
    for name, (opts, files) in sorted(table.items()):
        first = name.split()[0]
        for opt in opts:
            flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
            lines.append(f"complete -c qwenbuild -n '__fish_seen_subcommand_from {first}' "
                         f"{flag}")
        if files:
            lines.append(f"complete -c qwenbuild -n '__fish_seen_subcommand_from {first}' -F")
    return "\n".join(lines) + "\n"


def _help(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return (choice.help or "").replace("'", "")
    return ""


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell, args.root_parser))
    return EXIT_OK

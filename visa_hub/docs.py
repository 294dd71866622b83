"""Generate the operator's configuration reference (README) from the traitlets ``help=`` texts.

    python -m visa_hub.docs            print the reference
    python -m visa_hub.docs --write    update the section between the markers in README.md
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from pathlib import Path

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"

# (import path, the classes whose own traits are documented under it)
DOCUMENTED = [
    ("visa_hub.site:VisaSite", ["visa_hub.site:VisaSite"]),
    ("visa_hub.look.theme:VisaTheme", ["visa_hub.look.theme:VisaTheme"]),
    ("visa_hub.useroffice.file:FileUserOffice", ["visa_hub.useroffice.file:FileUserOffice"]),
    ("visa_hub.useroffice.graphql:GraphQLUserOffice", ["visa_hub.useroffice.graphql:GraphQLUserOffice"]),
    ("visa_hub.useroffice.events:UserOfficeEvents", ["visa_hub.useroffice.events:UserOfficeEvents"]),
    ("authenticators.demo:DemoAuthenticator", ["authenticators.base:UserOfficeAuthorizationMixin"]),
    ("authenticators.keycloak:KeycloakAuthenticator", ["authenticators.keycloak:KeycloakAuthenticator"]),
    ("spawners.local:LocalSpawner", ["spawners.local:LocalSpawner"]),
    ("visa_hub.singleuser.desktop.config:VisaDesktop", ["visa_hub.singleuser.desktop.config:VisaDesktop"]),
    ("spawners.openstack:OpenStackSpawner", ["spawners.openstack:OpenStackSpawner"]),
    ("spawners.slurm:SlurmSpawner", ["spawners.slurm:SlurmSpawner"]),
    ("spawners.slurm_token:SlurmTokenHandover", ["spawners.slurm_token:SlurmTokenHandover"]),
    ("visa_hub.slurm.sync:SlurmSync", ["visa_hub.slurm.sync:SlurmSync"]),
    ("visa_hub.cli:SlurmSyncApp", ["visa_hub.cli:SlurmSyncApp"]),
    ("visa_hub.apps.kernelspecs:AppKernelSpecManager", ["visa_hub.apps.kernelspecs:AppKernelSpecManager"]),
    ("visa_hub.sessions.app:VisaSessions", ["visa_hub.sessions.app:VisaSessions"]),
    ("visa_hub.sessions.mailer:VisaMailer", ["visa_hub.sessions.mailer:VisaMailer"]),
    ("visa_hub.sessions.backends:SlurmLimits", ["visa_hub.sessions.backends:SlurmLimits"]),
    ("visa_hub.singleuser.activity:VisaActivity", ["visa_hub.singleuser.activity:VisaActivity"]),
    ("visa_hub.sessions.sharing:Sharing", ["visa_hub.sessions.sharing:Sharing"]),
    ("visa_hub.singleuser.sharing.config:VisaSharing", ["visa_hub.singleuser.sharing.config:VisaSharing"]),
    ("visa_hub.singleuser.expiry:VisaExpiry", ["visa_hub.singleuser.expiry:VisaExpiry"]),
    ("visa_hub.ops.config:OperatorConsole", ["visa_hub.ops.config:OperatorConsole"]),
]


def _load(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _machine_independent(text: str) -> str:
    """Defaults computed from this installation (its venv, its checkout) shown as placeholders."""
    return text.replace(sys.prefix, "<venv>").replace(str(Path(__file__).resolve().parents[1]), "<checkout>")


def reference() -> str:
    """Markdown: one section per class, one entry per configurable trait it adds."""
    parts = []
    for shown, owners in DOCUMENTED:
        cls = _load(shown)
        parts.append(f"### `{cls.__name__}`\n\n{(cls.__doc__ or '').strip().splitlines()[0]}\n")
        for owner in map(_load, owners):
            for name, trait in sorted(owner.class_own_traits(config=True).items()):
                default = _machine_independent(trait.default_value_repr())
                help_text = textwrap.dedent(trait.help or "").strip().replace("\n", " ")
                parts.append(f"- `c.{cls.__name__}.{name}` ({type(trait).__name__}, default `{default}`): {help_text}")
        parts.append("")
    return "\n".join(parts).strip() + "\n"


def update_readme(readme: Path) -> bool:
    """Rewrite the reference section of ``readme``; True if it changed."""
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{reference()}{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args()
    if args.write:
        readme = Path(__file__).resolve().parents[1] / "README.md"
        print("README.md updated" if update_readme(readme) else "README.md already up to date")
    else:
        print(reference(), end="")


if __name__ == "__main__":
    main()

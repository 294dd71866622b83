"""The operator console's settings (traitlets; see the README's configuration reference)."""

from __future__ import annotations

from traitlets import Dict, Float, Int, Unicode
from traitlets.config import SingletonConfigurable


class OperatorConsole(SingletonConfigurable):
    """The operator console (``{hub}/hub/visa/ops``): every instance, its owner, experiment and backend."""

    user_url = Unicode(
        "{hub}/admin?name_filter={owner}", config=True,
        help="Link from an instance to its owner. Placeholders: {hub} (the hub's URL prefix, e.g. /hub), {owner}. "
             "Default: JupyterHub's admin page, filtered to her.",
    )
    experiment_url = Unicode(
        "{hub}/visa/ops?experiment={experiment}", config=True,
        help="Link from an instance to its experiment, e.g. the User Office's proposal page "
             "(https://useroffice.ess.eu/ProposalPage/{proposal_pk}). Placeholders: {hub}, {experiment} (the "
             "code), {proposal_pk}. Default: this console, filtered to the experiment.",
    )
    backend_urls = Dict(
        {}, config=True,
        help="Link from an instance to its resource in the backend's own console, per backend label "
             "(openstack, slurm, local): e.g. {'openstack': 'https://horizon.ess.eu/project/instances/"
             "{resource_id}/'}. Placeholders: {resource_id} (server id, Slurm job id, process id), {owner}, "
             "{experiment}, {hub}. Backends without one show the id without a link.",
    )
    refresh_seconds = Int(15, config=True, help="How often the console's page reloads its table (seconds).")
    status_timeout = Float(
        8.0, config=True,
        help="Seconds the console waits for the User Office's and each backend's status before calling it "
             "unreachable.",
    )

    def links(self) -> dict[str, str]:
        return {"user": self.user_url, "experiment": self.experiment_url}

"""A local, faithful fake of a Microsoft 365 tenant for development and tests (never deployed).

Serves, over real HTTPS on 127.0.0.1 with a private CA:

- Entra ID for one tenant: OpenID discovery, JWKS and the client-credentials token endpoint, good
  enough for MSAL's ConfidentialClientApplication with a client secret or a certificate;
- the Office 365 Management Activity API (subscriptions, content listing with NextPageUri paging,
  content blobs) with the documented rules and error codes, and switchable, seeded faults;
- generated tenant activity (`simulator.tenant`): owners, a delegate, an admin, an attacker session
  through Microsoft Graph, a throttled mailbox, duplicates, late and expired content;
- ground truth: which MailItemsAccessed records were served and which are available.

    from simulator import Simulator, SimulatorConfig, FaultConfig
    with Simulator(SimulatorConfig(seed=7, faults=FaultConfig.moderate())) as sim:
        env = sim.settings_env("secret")  # TENANT_ID, CLIENT_ID, ..., CA_BUNDLE
        ...
        sim.ground_truth()

`python -m simulator --help` runs it standalone.
"""

from simulator.config import FaultConfig, SimulatorConfig
from simulator.core import PUBLISHER_ID, Simulator

__all__ = ["PUBLISHER_ID", "FaultConfig", "Simulator", "SimulatorConfig"]

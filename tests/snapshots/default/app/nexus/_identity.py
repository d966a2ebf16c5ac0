# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""What this service is.

The name, port and GPU needs come from the template answers (.copier-answers.yml); change them with
`copier update --defaults --data NAME=VALUE`. Version, description, owner and capabilities belong to the
service: they are read from release/service.env (see app.nexus._facts), and a bad file stops start-up
with one line (create_app). SERVICE_NAME and SERVICE_VERSION can be overridden from the environment.
"""

from app.nexus._facts import FactsError, ServiceFacts, read_facts

SERVICE_NAME = "echo-service"
DEFAULT_PORT = 9000
GPU = False
# "openai": the OpenAI capabilities forward to the OpenAI-compatible backend at BACKEND_URL
BACKEND = "none"
TEMPLATE_VERSION = "<commit>"

try:
    FACTS: ServiceFacts | None = read_facts()
    FACTS_ERROR = ""
except FactsError as error:
    FACTS, FACTS_ERROR = None, str(error)

SERVICE_VERSION = FACTS.service_version if FACTS else ""
DESCRIPTION = FACTS.service_description if FACTS else ""
OWNER = FACTS.service_owner if FACTS else ""
CAPABILITIES: tuple[str, ...] = FACTS.service_capabilities if FACTS else ()

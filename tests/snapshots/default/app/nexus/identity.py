# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""What this service is, from the template answers (.copier-answers.yml).

Change an answer with `copier update --defaults --data NAME=VALUE` so every file that uses it follows;
SERVICE_NAME and SERVICE_VERSION can also be overridden at run time from the environment.
"""

SERVICE_NAME = "echo-service"
SERVICE_VERSION = "0.1.0"
DESCRIPTION = "The echo-service service of the Nexus AI platform."
OWNER = "nexus-platform"
CAPABILITIES: tuple[str, ...] = ()
DEFAULT_PORT = 9000
GPU = False
TEMPLATE_VERSION = "<commit>"

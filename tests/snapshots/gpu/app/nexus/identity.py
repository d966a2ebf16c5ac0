# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""What this service is, from the template answers (.copier-answers.yml).

Change an answer with `copier update --defaults --data NAME=VALUE` so every file that uses it follows;
SERVICE_NAME and SERVICE_VERSION can also be overridden at run time from the environment.
"""

SERVICE_NAME = "image-generator"
SERVICE_VERSION = "0.1.0"
DESCRIPTION = "The image-generator service of the Nexus AI platform."
OWNER = "media-team"
CAPABILITIES: tuple[str, ...] = ("images.generations",)
DEFAULT_PORT = 18440
GPU = True
GPU_COUNT = 2
TEMPLATE_VERSION = "<commit>"

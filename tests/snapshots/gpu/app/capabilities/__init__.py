"""Your implementations of the OpenAI capabilities this service offers. These files are yours.

The template created them once, each with a deterministic example, and `copier update` never touches
them again; the platform (the nexus-ai-platform library) serves the routes, validates requests and streams
answers.
"""

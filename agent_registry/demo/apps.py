from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The embedded demo (``manage.py seed_demo``, run by ``make run``).

    It sits above every domain app, whose services it calls to make its data, so
    that no lower app (core least of all) imports them.
    """

    name = "agent_registry.demo"
    label = "demo"
    verbose_name = "Demo"

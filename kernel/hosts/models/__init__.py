"""Language model providers a host runs natively, outside every capOS process.

The kernel sees them only through `kernel.services.model.HostModel`; a
provider turns one LanguageModel.generate request into a stream of events.
"""

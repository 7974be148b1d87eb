"""Shared fakes of the federated tests."""


class Nodes:
    """A Flower client manager with ``n`` connected nodes (what NclabStrategy.configure_fit asks of one)."""

    def __init__(self, n):
        self.nodes = {str(i): type("Node", (), {"cid": str(i)})() for i in range(n)}

    def wait_for(self, n, timeout):
        return True

    def all(self):
        return self.nodes

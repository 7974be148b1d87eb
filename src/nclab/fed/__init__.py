"""Federated long-tailed learning on Flower: partitions, FedAvg/FedProx/fixed-ETF/FedGELA clients.

Importing ``nclab.fed.config``, ``partition``, ``setup`` or ``local`` needs only torch (FedGELA's head is
the head registry's ``gela``); the Flower factories and apps (``nclab.fed.flower``, ``nclab.fed.apps``)
need the optional extra ``nclab[fed]`` (``flwr[simulation]``).
"""

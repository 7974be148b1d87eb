"""Federated long-tailed learning on Flower: partitions, FedAvg/FedProx/fixed-ETF/FedGELA clients.

Importing ``nclab.fed.partition`` or ``nclab.fed.gela`` needs only torch; the Flower apps
(``nclab.fed.apps``) need the optional extra ``nclab[fed]`` (``flwr[simulation]``).
"""

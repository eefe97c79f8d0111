"""Call aapy's ``AaRestClient`` (the management API, as site scripts use it).

Arguments: host port, then calls as ``method=arg`` (``arg`` JSON; a list is spread as
positional arguments). Prints JSON: a list with each call's result, or
``{"error": status}`` where aapy raised for an HTTP error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import requests
from aa.rest import AaRestClient


def main() -> None:
    host, port, *calls = sys.argv[1:]
    client = AaRestClient(host, int(port))
    results: list[Any] = []
    for call in calls:
        method, _, text = call.partition("=")
        argument = json.loads(text) if text else []
        arguments = argument if isinstance(argument, list) else [argument]
        try:
            result = getattr(client, method)(*arguments)
        except requests.HTTPError as error:
            result = {"error": error.response.status_code if error.response is not None else 0}
        results.append(sorted(result) if isinstance(result, set) else result)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

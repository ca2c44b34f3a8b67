"""One OS thread per request, the threaded twin of the seed's one greenlet per URL."""

import threading


def run(fetch, urls, concurrency):
    results = [None] * len(urls)

    def task(i, url):
        results[i] = fetch(url)

    threads = [threading.Thread(target=task, args=(i, url)) for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results

#!/bin/sh
# A sketch of the deploy hook the example project (../projects/shop.yaml) runs, kept in the
# project's own repository as scripts/deploy-hook.sh. It shows the exit-code contract of
# docs/deploy-edge.md; the docker and curl lines stand for your own deployment.
#
#   0   deployed (and .sluice/deploy-$SLUICE_TASK_ID.md says deploy_status: SUCCESS)
#   1   the deploy failed; production was rolled back or left as it was
#   2   refused: a precondition failed, nothing changed
#   75  temporary failure before anything changed: Sluice retries the job
#
# Under `once: true` Sluice runs it at most once per task, job and head commit; a re-run
# finalises from the exit status recorded beside its log instead of running it again.
set -u
mode=${1:-}
record() { # <key> <value>: the record the stage's verdict gate reads
    mkdir -p .sluice && printf -- '---\n%s: %s\nwork_item: %s\n---\n' "$1" "$2" "$SLUICE_TASK_ID" > ".sluice/$3-$SLUICE_TASK_ID.md"
}
head=$(git rev-parse HEAD) || exit 2

case "$mode" in
--staging)
    docker build --label "org.opencontainers.image.revision=$head" \
                 --label "org.opencontainers.image.source=https://git.example/acme/shop" \
                 -t "registry.example/acme/shop:$head" . || { record staging_status FAILED staging; exit 1; }
    docker push "registry.example/acme/shop:$head" || exit 75
    echo "registry.example/acme/shop:$head" > "$SLUICE_ARTIFACTS/staging-image.txt"
    # ... deploy to staging, check it ...
    record staging_status SUCCESS staging
    ;;
--production)
    image=$(cat "$EXPECTED_REVISION_FILE" 2>/dev/null) || exit 2
    case "$image" in *":$head") ;; *) echo "image $image is not the build of $head"; exit 2 ;; esac
    docker pull "$image" || exit 75          # nothing changed yet: safe to retry
    # From here on production changes: never exit 75.
    if ! docker tag "$image" registry.example/acme/shop:production; then
        record deploy_status FAILED deploy; exit 1
    fi
    # ... roll out, wait for health 200; on failure roll back, record FAILED, exit 1 ...
    record deploy_status SUCCESS deploy
    ;;
*)
    echo "usage: $0 --staging | --production" >&2
    exit 2
    ;;
esac
exit 0

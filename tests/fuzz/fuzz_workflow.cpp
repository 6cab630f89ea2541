// SPDX-License-Identifier: Apache-2.0
// Fuzz target: deriving the required CI contexts from a workflow file (libs/ciworkflow): the
// umbrella job's needs, job names, matrices, local reusable workflows. The input is a
// workflow; the same bytes also serve as the one local callee it may name.
#include "workflowcontexts.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    const QByteArray yaml(reinterpret_cast<const char *>(data), qsizetype(size));
    Sluice::Ci::WorkflowOptions options;
    options.workflowPath = QStringLiteral(".gitea/workflows/ci.yml");
    options.umbrellaJob = QStringLiteral("all-required");
    // The options vary with the input's length, so every byte stays part of the YAML.
    options.naming = size % 2 ? Sluice::Ci::Naming::GitHub : Sluice::Ci::Naming::Gitea;
    options.transitive = size % 4 >= 2;
    QHash<QString, QByteArray> callees;
    if (auto called = Sluice::Ci::calledWorkflows(yaml, options)) {
        for (const QString &path : *called)
            callees.insert(path, yaml);
    }
    (void)Sluice::Ci::deriveRequiredContexts(yaml, options, callees);
    return 0;
}

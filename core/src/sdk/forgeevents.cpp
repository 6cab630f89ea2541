// SPDX-License-Identifier: Apache-2.0
#include <sluice/forgeevents.h>

#include <QJsonObject>

#include <array>
#include <utility>

namespace Sluice {

namespace {
constexpr std::array<std::pair<ForgeEvent::Kind, const char *>, 7> kindNames{{
    {ForgeEvent::Kind::CommitStatus, "status"},
    {ForgeEvent::Kind::CheckRun, "check_run"},
    {ForgeEvent::Kind::CheckSuite, "check_suite"},
    {ForgeEvent::Kind::Push, "push"},
    {ForgeEvent::Kind::PullRequest, "pull_request"},
    {ForgeEvent::Kind::Review, "review"},
    {ForgeEvent::Kind::Comment, "comment"},
}};
const QString prefix = QStringLiteral("forge.");
} // namespace

PullRequestConversation::~PullRequestConversation() = default;

QString forgeEventKindName(ForgeEvent::Kind kind)
{
    for (const auto &[k, name] : kindNames) {
        if (k == kind)
            return QString::fromLatin1(name);
    }
    return {};
}

WebhookEvent toWebhookEvent(const ForgeEvent &e)
{
    WebhookEvent out;
    out.kind = prefix + forgeEventKindName(e.kind);
    const bool aboutCommit = e.kind == ForgeEvent::Kind::CommitStatus || e.kind == ForgeEvent::Kind::CheckRun
                             || e.kind == ForgeEvent::Kind::CheckSuite || e.kind == ForgeEvent::Kind::Push;
    out.subject = aboutCommit ? e.sha : QString::number(e.pullRequest);
    out.value = e.state.isEmpty() ? e.action : e.state;
    out.data = QJsonObject{{QStringLiteral("repository"), e.repository},
                           {QStringLiteral("sha"), e.sha},
                           {QStringLiteral("branch"), e.branch},
                           {QStringLiteral("pullRequest"), double(e.pullRequest)},
                           {QStringLiteral("action"), e.action},
                           {QStringLiteral("state"), e.state},
                           {QStringLiteral("context"), e.context},
                           {QStringLiteral("actor"), e.actor},
                           {QStringLiteral("text"), e.text},
                           {QStringLiteral("before"), e.before},
                           {QStringLiteral("id"), double(e.id)}};
    return out;
}

std::optional<ForgeEvent> forgeEventFromWebhook(const WebhookEvent &event)
{
    if (!event.kind.startsWith(prefix))
        return std::nullopt;
    const QString name = event.kind.mid(prefix.size());
    ForgeEvent e;
    bool known = false;
    for (const auto &[k, n] : kindNames) {
        if (name == QLatin1String(n)) {
            e.kind = k;
            known = true;
        }
    }
    if (!known)
        return std::nullopt;
    const QJsonObject &d = event.data;
    e.repository = d.value(QLatin1String("repository")).toString();
    e.sha = d.value(QLatin1String("sha")).toString();
    e.branch = d.value(QLatin1String("branch")).toString();
    e.pullRequest = qint64(d.value(QLatin1String("pullRequest")).toDouble());
    e.action = d.value(QLatin1String("action")).toString();
    e.state = d.value(QLatin1String("state")).toString();
    e.context = d.value(QLatin1String("context")).toString();
    e.actor = d.value(QLatin1String("actor")).toString();
    e.text = d.value(QLatin1String("text")).toString();
    e.before = d.value(QLatin1String("before")).toString();
    e.id = qint64(d.value(QLatin1String("id")).toDouble());
    return e;
}

} // namespace Sluice

// SPDX-License-Identifier: Apache-2.0
#include <sluice/checkruns.h>
#include <sluice/forge.h>
#include <sluice/plugin.h>
#include <sluice/secrets.h>
#include <sluice/services.h>
#include <sluice/tracker.h>

#include "plugincontext_p.h"

#include <QLoggingCategory>

namespace Sluice {

namespace {
constexpr std::pair<PluginKind, const char *> kindNames[] = {
    {PluginKind::Stage, "stage"},       {PluginKind::Gate, "gate"},
    {PluginKind::AgentLauncher, "agent-launcher"}, {PluginKind::Forge, "forge"},
    {PluginKind::Tracker, "tracker"},   {PluginKind::Notifier, "notifier"},
    {PluginKind::Sweeper, "sweeper"},
};

Q_LOGGING_CATEGORY(lcPluginFallback, "sluice.plugin")

class SystemClock final : public Clock
{
public:
    QDateTime now() const override { return QDateTime::currentDateTimeUtc(); }
};
} // namespace

QString pluginKindName(PluginKind kind)
{
    for (const auto &[k, name] : kindNames) {
        if (k == kind)
            return QString::fromLatin1(name);
    }
    return {};
}

std::optional<PluginKind> pluginKindFromName(const QString &name)
{
    for (const auto &[k, n] : kindNames) {
        if (name == QLatin1String(n))
            return k;
    }
    return std::nullopt;
}

Clock::~Clock() = default;

const Clock &Clock::system()
{
    static const SystemClock clock;
    return clock;
}

StateStore::~StateStore() = default;
LeaseService::~LeaseService() = default;

PluginContext::PluginContext()
    : d(std::make_unique<Data>())
{
}

PluginContext::PluginContext(const PluginContext &other)
    : d(std::make_unique<Data>(*other.d))
{
}

PluginContext &PluginContext::operator=(const PluginContext &other)
{
    if (this != &other)
        *d = *other.d;
    return *this;
}

PluginContext::~PluginContext() = default;

QString PluginContext::instanceName() const { return d->instanceName; }
QString PluginContext::pluginId() const { return d->pluginId; }
const ProjectInfo &PluginContext::project() const { return d->project; }
const QVariantMap &PluginContext::settings() const { return d->settings; }
SecretRef PluginContext::secret(const QString &key) const
{
    return SecretRef::fromVariant(d->settings.value(key));
}
const QLoggingCategory &PluginContext::logging() const
{
    return d->logging ? *d->logging : lcPluginFallback();
}
const Clock &PluginContext::clock() const { return d->clock ? *d->clock : Clock::system(); }
StateStore *PluginContext::state() const { return d->state; }
LeaseService *PluginContext::leases() const { return d->leases; }
std::shared_ptr<RepositoryService> PluginContext::repository() const { return d->repository; }
Forge *PluginContext::forge() const { return d->forge; }
Tracker *PluginContext::tracker() const { return d->tracker; }
AgentLauncher *PluginContext::agentLauncher() const { return d->agentLauncher; }

PluginInstance::PluginInstance(const PluginContext &context, QObject *parent)
    : QObject(parent)
    , m_context(context)
{
}

PluginInstance::~PluginInstance() = default;

Result<void> PluginInstance::initialize()
{
    return {};
}

void PluginInstance::shutdown() {}

PluginFactory::~PluginFactory() = default;

namespace {
constexpr std::pair<StatusState, const char *> statusNames[] = {
    {StatusState::Pending, "pending"}, {StatusState::Success, "success"},
    {StatusState::Error, "error"},     {StatusState::Failure, "failure"},
    {StatusState::Warning, "warning"}, {StatusState::Skipped, "skipped"},
    {StatusState::Cancelled, "cancelled"},
};
} // namespace

namespace {
// A call that fails with a fixed error once started.
template<typename T>
class UnsupportedCall final : public AsyncCall<T>
{
public:
    explicit UnsupportedCall(Error error)
        : m_error(std::move(error))
    {
    }

protected:
    void doStart() override { this->finishWith(std::unexpected(m_error)); }

private:
    Error m_error;
};
} // namespace

std::unique_ptr<AsyncCall<QStringList>> Forge::protectedContexts(const QString &)
{
    return std::make_unique<UnsupportedCall<QStringList>>(Error{ErrorCode::InvalidArgument,
                                                   QStringLiteral("forge connector '%1' cannot read branch protection").arg(context().instanceName()), {}});
}

std::unique_ptr<AsyncCall<PullRequest>> Forge::createPullRequest(const NewPullRequest &)
{
    return std::make_unique<UnsupportedCall<PullRequest>>(Error{ErrorCode::InvalidArgument,
                                                                QStringLiteral("forge connector '%1' cannot open pull requests").arg(context().instanceName()), {}});
}

Result<std::unique_ptr<Forge>> Forge::withCredential(const SecretRef &)
{
    return fail(ErrorCode::InvalidArgument,
                QStringLiteral("forge connector '%1' cannot act with another credential").arg(context().instanceName()));
}

CheckRunReader::~CheckRunReader() = default;

IdempotentComments::~IdempotentComments() = default;

QString statusStateName(StatusState state)
{
    for (const auto &[s, name] : statusNames) {
        if (s == state)
            return QString::fromLatin1(name);
    }
    return {};
}

std::optional<StatusState> statusStateFromName(const QString &name)
{
    for (const auto &[s, n] : statusNames) {
        if (name == QLatin1String(n))
            return s;
    }
    return std::nullopt;
}

} // namespace Sluice

// SPDX-License-Identifier: Apache-2.0
#include "ruleset.h"

#include "tomlreader.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

// Outside any namespace, as Q_INIT_RESOURCE requires.
static void initSecretRulesResource()
{
    Q_INIT_RESOURCE(secretrules);
}

namespace Sluice::Security {

namespace {

constexpr int MaxExtendDepth = 2;
const QString DefaultRulesName = QStringLiteral("<default rules>");

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

struct Loader {
    QString file;

    QString at(const TomlValue &value) const { return QStringLiteral("%1:%2").arg(file).arg(value.line); }

    std::unexpected<Error> problem(const TomlValue &value, const QString &key, const QString &message) const
    {
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: key '%2': %3").arg(at(value), key, message));
    }

    Result<void> checkKeys(const TomlValue &table, const QString &where, std::initializer_list<const char *> known) const
    {
        for (const auto &[key, value] : table.entries) {
            const bool ok = std::any_of(known.begin(), known.end(), [&](const char *k) { return key == k; });
            if (!ok)
                return problem(value, where.isEmpty() ? QString::fromStdString(value.spelling)
                                                      : where + QLatin1Char('.') + QString::fromStdString(value.spelling),
                               QStringLiteral("unknown key"));
        }
        return {};
    }

    Result<std::string> string(const TomlValue &table, const char *key, const QString &where) const
    {
        const TomlValue *v = table.find(key);
        if (!v)
            return std::string();
        if (v->kind != TomlValue::Kind::String)
            return problem(*v, where + QLatin1Char('.') + QLatin1String(key),
                           QStringLiteral("must be a string, not %1").arg(QLatin1String(TomlValue::kindName(v->kind))));
        return v->text;
    }

    Result<std::vector<std::string>> strings(const TomlValue &table, const char *key, const QString &where) const
    {
        std::vector<std::string> out;
        const TomlValue *v = table.find(key);
        if (!v)
            return out;
        const QString name = where + QLatin1Char('.') + QLatin1String(key);
        if (v->kind != TomlValue::Kind::Array)
            return problem(*v, name, QStringLiteral("must be an array of strings"));
        for (const TomlValue &item : v->items) {
            if (item.kind != TomlValue::Kind::String)
                return problem(item, name, QStringLiteral("must be an array of strings, found a %1")
                                               .arg(QLatin1String(TomlValue::kindName(item.kind))));
            out.push_back(item.text);
        }
        return out;
    }

    Result<Allowlist> allowlist(const TomlValue &table, const QString &where, bool global) const
    {
        if (auto ok = checkKeys(table, where, {"description", "condition", "matchcondition", "regextarget", "regexes",
                                               "paths", "stopwords", "commits", "targetrules"});
            !ok)
            return std::unexpected(ok.error());
        Allowlist a;
        a.origin = at(table);
        auto description = string(table, "description", where);
        if (!description)
            return std::unexpected(description.error());
        a.description = *description;
        for (const char *conditionKey : {"condition", "matchcondition"}) {
            auto condition = string(table, conditionKey, where);
            if (!condition)
                return std::unexpected(condition.error());
            const std::string c = lower(*condition);
            if (c.empty())
                continue;
            if (c == "or")
                a.condition = Allowlist::Condition::Or;
            else if (c == "and" || c == "&&")
                a.condition = Allowlist::Condition::And;
            else
                return problem(*table.find(conditionKey), where + QStringLiteral(".condition"),
                               QStringLiteral("unknown condition '%1' (OR or AND)").arg(QString::fromStdString(*condition)));
        }
        auto target = string(table, "regextarget", where);
        if (!target)
            return std::unexpected(target.error());
        if (!target->empty()) {
            const std::string t = lower(*target);
            if (t == "secret")
                a.regexTarget = Allowlist::Target::Secret;
            else if (t == "match")
                a.regexTarget = Allowlist::Target::Match;
            else if (t == "line")
                a.regexTarget = Allowlist::Target::Line;
            else
                return problem(*table.find("regextarget"), where + QStringLiteral(".regexTarget"),
                               QStringLiteral("unknown target '%1' (secret, match or line)").arg(QString::fromStdString(*target)));
        }
        auto regexes = strings(table, "regexes", where);
        auto paths = strings(table, "paths", where);
        auto stopwords = strings(table, "stopwords", where);
        auto commits = strings(table, "commits", where);
        auto targetRules = strings(table, "targetrules", where);
        for (auto *r : {&regexes, &paths, &stopwords, &commits, &targetRules}) {
            if (!*r)
                return std::unexpected(r->error());
        }
        a.regexes = *regexes;
        a.paths = *paths;
        for (const std::string &word : *stopwords)
            a.stopwords.push_back(lower(word));
        a.commits = *commits;
        a.targetRules = *targetRules;
        if (!global && !a.targetRules.empty())
            return problem(*table.find("targetrules"), where + QStringLiteral(".targetRules"),
                           QStringLiteral("only global allowlists can target rules"));
        if (a.regexes.empty() && a.paths.empty() && a.stopwords.empty() && a.commits.empty())
            return problem(table, where, QStringLiteral("allowlist has none of commits, paths, regexes or stopwords"));
        return a;
    }

    // Reads `allowlist` (legacy table) or `allowlists` (array of tables) from @p table.
    Result<std::vector<Allowlist>> allowlists(const TomlValue &table, const QString &where, bool global) const
    {
        std::vector<Allowlist> out;
        const TomlValue *legacy = table.find("allowlist");
        const TomlValue *list = table.find("allowlists");
        if (legacy && list)
            return problem(*list, where.isEmpty() ? QStringLiteral("allowlists") : where + QStringLiteral(".allowlists"),
                           QStringLiteral("use either [%1allowlist] or [[%1allowlists]], not both (the first is on line %2)")
                               .arg(where.isEmpty() ? QString() : QStringLiteral("rules."))
                               .arg(legacy->line));
        if (legacy) {
            const QString name = where.isEmpty() ? QStringLiteral("allowlist") : where + QStringLiteral(".allowlist");
            if (legacy->kind != TomlValue::Kind::Table)
                return problem(*legacy, name, QStringLiteral("must be a table"));
            auto a = allowlist(*legacy, name, global);
            if (!a)
                return std::unexpected(a.error());
            out.push_back(std::move(*a));
        }
        if (list) {
            const QString name = where.isEmpty() ? QStringLiteral("allowlists") : where + QStringLiteral(".allowlists");
            if (list->kind != TomlValue::Kind::Array)
                return problem(*list, name, QStringLiteral("must be an array of tables ([[%1]])").arg(name));
            for (std::size_t i = 0; i < list->items.size(); ++i) {
                const TomlValue &item = list->items[i];
                const QString itemName = QStringLiteral("%1[%2]").arg(name).arg(i);
                if (item.kind != TomlValue::Kind::Table)
                    return problem(item, itemName, QStringLiteral("must be a table"));
                auto a = allowlist(item, itemName, global);
                if (!a)
                    return std::unexpected(a.error());
                out.push_back(std::move(*a));
            }
        }
        return out;
    }

    Result<Rule> rule(const TomlValue &table, const QString &where) const
    {
        if (auto ok = checkKeys(table, where, {"id", "description", "regex", "secretgroup", "entropy", "keywords", "path",
                                               "tags", "allowlist", "allowlists", "skipreport", "required"});
            !ok)
            return std::unexpected(ok.error());
        Rule r;
        r.origin = at(table);
        if (const TomlValue *required = table.find("required"))
            return problem(*required, where + QStringLiteral(".required"),
                           QStringLiteral("composite rules ([[rules.required]]) are not supported by this scanner"));
        auto id = string(table, "id", where);
        if (!id)
            return std::unexpected(id.error());
        if (id->empty())
            return problem(table, where + QStringLiteral(".id"), QStringLiteral("every rule needs an id"));
        r.id = *id;
        const QString name = QStringLiteral("rules '%1'").arg(QString::fromStdString(r.id));
        auto description = string(table, "description", name);
        auto regex = string(table, "regex", name);
        auto path = string(table, "path", name);
        for (auto *s : {&description, &regex, &path}) {
            if (!*s)
                return std::unexpected(s->error());
        }
        r.description = *description;
        r.regex = *regex;
        r.path = *path;
        if (const TomlValue *group = table.find("secretgroup")) {
            if (group->kind != TomlValue::Kind::Integer || group->integer < 0 || group->integer > 1000)
                return problem(*group, name + QStringLiteral(".secretGroup"), QStringLiteral("must be a non-negative integer"));
            r.secretGroup = int(group->integer);
        }
        if (const TomlValue *entropy = table.find("entropy")) {
            if (entropy->kind == TomlValue::Kind::Integer)
                r.entropy = double(entropy->integer);
            else if (entropy->kind == TomlValue::Kind::Float)
                r.entropy = entropy->number;
            else
                return problem(*entropy, name + QStringLiteral(".entropy"), QStringLiteral("must be a number"));
            if (!(r.entropy >= 0))
                return problem(*entropy, name + QStringLiteral(".entropy"), QStringLiteral("must not be negative"));
        }
        if (const TomlValue *skip = table.find("skipreport")) {
            if (skip->kind != TomlValue::Kind::Boolean)
                return problem(*skip, name + QStringLiteral(".skipReport"), QStringLiteral("must be a boolean"));
            r.skipReport = skip->boolean;
        }
        auto keywords = strings(table, "keywords", name);
        if (!keywords)
            return std::unexpected(keywords.error());
        r.keywords = *keywords;
        for (const std::string &keyword : r.keywords) {
            if (keyword.empty())
                return problem(*table.find("keywords"), name + QStringLiteral(".keywords"),
                               QStringLiteral("an empty keyword would match everything"));
        }
        auto tags = strings(table, "tags", name);
        if (!tags)
            return std::unexpected(tags.error());
        r.tags = *tags;
        auto lists = allowlists(table, name, false);
        if (!lists)
            return std::unexpected(lists.error());
        r.allowlists = std::move(*lists);
        return r;
    }
};

void mergeInto(Rule &base, const Rule &extension)
{
    if (!extension.description.empty())
        base.description = extension.description;
    if (extension.entropy != 0)
        base.entropy = extension.entropy;
    if (extension.secretGroup != 0)
        base.secretGroup = extension.secretGroup;
    if (!extension.regex.empty())
        base.regex = extension.regex;
    if (!extension.path.empty())
        base.path = extension.path;
    base.tags.insert(base.tags.end(), extension.tags.begin(), extension.tags.end());
    base.keywords.insert(base.keywords.end(), extension.keywords.begin(), extension.keywords.end());
    base.allowlists.insert(base.allowlists.end(), extension.allowlists.begin(), extension.allowlists.end());
    base.origin = extension.origin + QStringLiteral(" (extends ") + base.origin + QLatin1Char(')');
}

Result<RuleSet> load(const std::string &text, const QString &name, const QString &baseDir, int depth);

Result<RuleSet> loadFile(const QString &path, int depth)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return fail(ErrorCode::NotFound, QStringLiteral("cannot read rule file %1: %2").arg(path, file.errorString()));
    if (file.size() > 16 * 1024 * 1024)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("rule file %1 is larger than 16 MiB").arg(path));
    const QByteArray bytes = file.readAll();
    return load(bytes.toStdString(), path, QFileInfo(path).absolutePath(), depth);
}

Result<RuleSet> load(const std::string &text, const QString &name, const QString &baseDir, int depth)
{
    auto document = parseToml(text, name);
    if (!document)
        return std::unexpected(document.error());
    const TomlValue &root = *document;
    Loader loader{name};
    if (auto ok = loader.checkKeys(root, {}, {"title", "minversion", "description", "extend", "rules", "allowlist",
                                              "allowlists"});
        !ok)
        return std::unexpected(ok.error());

    RuleSet set;
    if (auto title = loader.string(root, "title", QStringLiteral("title")); title)
        set.title = QString::fromStdString(*title);
    else
        return std::unexpected(title.error());

    // The base this file extends, if any.
    RuleSet base;
    bool extending = false;
    if (const TomlValue *extend = root.find("extend")) {
        if (extend->kind != TomlValue::Kind::Table)
            return loader.problem(*extend, QStringLiteral("extend"), QStringLiteral("must be a table"));
        if (auto ok = loader.checkKeys(*extend, QStringLiteral("extend"), {"usedefault", "path", "url", "disabledrules"}); !ok)
            return std::unexpected(ok.error());
        if (depth >= MaxExtendDepth)
            return loader.problem(*extend, QStringLiteral("extend"),
                                  QStringLiteral("extends nest deeper than %1 levels").arg(MaxExtendDepth));
        if (const TomlValue *url = extend->find("url"))
            return loader.problem(*url, QStringLiteral("extend.url"),
                                  QStringLiteral("extending from a URL is not supported; copy the file and use extend.path"));
        const TomlValue *useDefault = extend->find("usedefault");
        if (useDefault && useDefault->kind != TomlValue::Kind::Boolean)
            return loader.problem(*useDefault, QStringLiteral("extend.useDefault"), QStringLiteral("must be a boolean"));
        auto path = loader.string(*extend, "path", QStringLiteral("extend"));
        if (!path)
            return std::unexpected(path.error());
        if (useDefault && useDefault->boolean && !path->empty())
            return loader.problem(*extend, QStringLiteral("extend"), QStringLiteral("give useDefault or path, not both"));
        if (useDefault && useDefault->boolean) {
            auto loaded = load(defaultRulesText(), DefaultRulesName, {}, depth + 1);
            if (!loaded)
                return std::unexpected(loaded.error());
            base = std::move(*loaded);
            extending = true;
        } else if (!path->empty()) {
            if (baseDir.isEmpty())
                return loader.problem(*extend->find("path"), QStringLiteral("extend.path"),
                                      QStringLiteral("this rule file cannot extend another file (only useDefault)"));
            const QString resolved = QDir(baseDir).absoluteFilePath(QString::fromStdString(*path));
            auto loaded = loadFile(resolved, depth + 1);
            if (!loaded)
                return fail(loaded.error().code, QStringLiteral("%1: key 'extend.path': %2")
                                                      .arg(loader.at(*extend->find("path")), loaded.error().message));
            base = std::move(*loaded);
            extending = true;
        }
        auto disabled = loader.strings(*extend, "disabledrules", QStringLiteral("extend"));
        if (!disabled)
            return std::unexpected(disabled.error());
        for (const std::string &id : *disabled) {
            std::erase_if(base.rules, [&](const Rule &r) { return r.id == id; });
        }
    }

    std::vector<Rule> own;
    if (const TomlValue *rules = root.find("rules")) {
        if (rules->kind != TomlValue::Kind::Array)
            return loader.problem(*rules, QStringLiteral("rules"), QStringLiteral("must be an array of tables ([[rules]])"));
        std::set<std::string> ids;
        for (std::size_t i = 0; i < rules->items.size(); ++i) {
            const TomlValue &item = rules->items[i];
            const QString where = QStringLiteral("rules[%1]").arg(i);
            if (item.kind != TomlValue::Kind::Table)
                return loader.problem(item, where, QStringLiteral("must be a table"));
            auto r = loader.rule(item, where);
            if (!r)
                return std::unexpected(r.error());
            if (!ids.insert(r->id).second)
                return loader.problem(item, where + QStringLiteral(".id"),
                                      QStringLiteral("rule id '%1' is used twice").arg(QString::fromStdString(r->id)));
            own.push_back(std::move(*r));
        }
    }

    auto globals = loader.allowlists(root, {}, true);
    if (!globals)
        return std::unexpected(globals.error());

    // Merge: own rules extend base rules of the same id, new ones are added.
    set.rules = std::move(base.rules);
    for (Rule &r : own) {
        auto it = std::find_if(set.rules.begin(), set.rules.end(), [&](const Rule &b) { return b.id == r.id; });
        if (it != set.rules.end())
            mergeInto(*it, r);
        else
            set.rules.push_back(std::move(r));
    }
    for (const Rule &r : set.rules) {
        if (r.regex.empty() && r.path.empty())
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1: rule '%2' has neither a regex nor a path%3")
                            .arg(r.origin, QString::fromStdString(r.id),
                                 extending ? QStringLiteral(" (and no rule of that id is extended)") : QString()));
    }
    set.allowlists = std::move(base.allowlists);
    for (Allowlist &a : *globals) {
        if (a.targetRules.empty()) {
            set.allowlists.push_back(std::move(a));
            continue;
        }
        for (const std::string &target : a.targetRules) {
            auto it = std::find_if(set.rules.begin(), set.rules.end(), [&](const Rule &r) { return r.id == target; });
            if (it == set.rules.end())
                return fail(ErrorCode::InvalidConfig,
                            QStringLiteral("%1: key 'allowlists.targetRules': no rule has the id '%2'")
                                .arg(a.origin, QString::fromStdString(target)));
            Allowlist copy = a;
            copy.targetRules.clear();
            it->allowlists.push_back(std::move(copy));
        }
    }
    set.sources = base.sources;
    set.sources.append(name);
    return set;
}

} // namespace

const Rule *RuleSet::rule(const std::string &id) const
{
    for (const Rule &r : rules) {
        if (r.id == id)
            return &r;
    }
    return nullptr;
}

std::string defaultRulesText()
{
    initSecretRulesResource();
    QFile file(QStringLiteral(":/sluice/secrets/gitleaks-default.toml"));
    if (!file.open(QIODevice::ReadOnly))
        return {};
    return file.readAll().toStdString();
}

Result<RuleSet> defaultRuleSet()
{
    const std::string text = defaultRulesText();
    if (text.empty())
        return fail(ErrorCode::NotFound, QStringLiteral("the built-in default rules are missing from this build"));
    return load(text, DefaultRulesName, {}, 0);
}

Result<RuleSet> loadRuleFile(const QString &path)
{
    return loadFile(path, 0);
}

Result<RuleSet> loadRuleText(const std::string &text, const QString &name, const QString &baseDir)
{
    return load(text, name, baseDir, 0);
}

} // namespace Sluice::Security

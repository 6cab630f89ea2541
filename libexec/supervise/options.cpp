// SPDX-License-Identifier: Apache-2.0
#include "options.h"

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace Sluice::Supervise {

namespace {

std::optional<std::uint64_t> number(std::string_view text)
{
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    errno = 0;
    const unsigned long long value = std::strtoull(std::string(text).c_str(), nullptr, 10);
    if (errno == ERANGE)
        return std::nullopt;
    return value;
}

} // namespace

std::expected<Options, std::string> parseOptions(int argc, char **argv)
{
    Options options;
    int i = 1;
    for (; i < argc; ++i) {
        const std::string_view option(argv[i]);
        if (option == "--") {
            ++i;
            break;
        }
        if (option == "--ends-with-daemon") {
            options.endsWithDaemon = true;
            continue;
        }
        if (i + 1 >= argc)
            return std::unexpected("option " + std::string(option) + " needs a value");
        const std::string_view value(argv[++i]);
        const auto numeric = [&](std::optional<std::uint64_t> &out) -> bool {
            out = number(value);
            return out.has_value();
        };
        std::optional<std::uint64_t> parsed;
        if (option == "--log") {
            options.log = value;
        } else if (option == "--log-limit") {
            if (!numeric(parsed))
                return std::unexpected("--log-limit takes a number of bytes");
            options.logLimit = *parsed;
        } else if (option == "--status") {
            options.status = value;
        } else if (option == "--cgroup-parent") {
            options.cgroupParent = value;
        } else if (option == "--memory-max") {
            if (!numeric(options.memoryMax))
                return std::unexpected("--memory-max takes a number of bytes");
        } else if (option == "--cpu-max") {
            options.cpuMax = std::string(value);
        } else if (option == "--pids-max") {
            if (!numeric(options.pidsMax))
                return std::unexpected("--pids-max takes a number");
        } else if (option == "--user") {
            if (!numeric(parsed))
                return std::unexpected("--user takes a numeric uid");
            options.uid = uid_t(*parsed);
        } else if (option == "--group") {
            if (!numeric(parsed))
                return std::unexpected("--group takes a numeric gid");
            options.gid = gid_t(*parsed);
        } else if (option == "--groups") {
            std::string_view rest = value;
            while (!rest.empty()) {
                const std::size_t comma = rest.find(',');
                const auto group = number(rest.substr(0, comma));
                if (!group)
                    return std::unexpected("--groups takes numeric gids separated by commas");
                options.groups.push_back(gid_t(*group));
                rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
            }
        } else if (option == "--kill-grace") {
            if (!numeric(parsed) || *parsed > 3600000)
                return std::unexpected("--kill-grace takes milliseconds (at most an hour)");
            options.killGraceMs = int(*parsed);
        } else if (option == "--own") {
            options.own.emplace_back(value);
        } else {
            return std::unexpected("unknown option " + std::string(option));
        }
    }
    for (; i < argc; ++i)
        options.command.emplace_back(argv[i]);
    if (options.command.empty() || options.command.front().empty() || options.command.front().front() != '/')
        return std::unexpected("no program to run (an absolute path after --)");
    if (options.log.empty())
        return std::unexpected("--log is required");
    if (options.uid.has_value() != options.gid.has_value())
        return std::unexpected("--user and --group go together");
    if (!options.own.empty() && !options.uid)
        return std::unexpected("--own needs --user");
    if ((options.memoryMax || options.cpuMax || options.pidsMax) && options.cgroupParent.empty())
        return std::unexpected("limits need --cgroup-parent");
    return options;
}

} // namespace Sluice::Supervise

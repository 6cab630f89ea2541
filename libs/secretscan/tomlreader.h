// SPDX-License-Identifier: Apache-2.0
#pragma once

// A strict reader for the subset of TOML that gitleaks configuration files use: tables,
// arrays of tables, dotted keys, basic/literal/multi-line strings, integers, floats,
// booleans, arrays and inline tables. Dates and times are refused. Keys are compared
// case-insensitively (gitleaks reads its files through viper, which does the same), so
// they are stored lower-cased next to their spelling in the file.

#include <sluice/error.h>

#include <QString>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace Sluice::Security {

struct TomlEntry;

/// One TOML value with the line it was defined on.
struct TomlValue {
    enum class Kind { String, Integer, Float, Boolean, Array, Table };

    Kind kind = Kind::Table;
    int line = 0;            ///< 1-based line of the value (of the header for tables).
    std::string text;        ///< String: UTF-8 value.
    std::int64_t integer = 0;
    double number = 0;
    bool boolean = false;
    std::vector<TomlValue> items; ///< Array elements.
    /// Table entries in file order: lower-cased key, value. Spelling kept in `spelling`.
    std::vector<TomlEntry> entries;
    std::string spelling;    ///< The key as written (for messages).
    bool definedByHeader = false;  ///< Table defined by a [header] (not implicitly).
    bool arrayOfTables = false;    ///< Array created by [[header]].
    bool inlineClosed = false;     ///< Inline tables and arrays cannot be extended.

    [[nodiscard]] const TomlValue *find(const std::string &lowerKey) const;
    TomlValue *find(const std::string &lowerKey);
    [[nodiscard]] static const char *kindName(Kind kind);
};

/// One entry of a table: its lower-cased key and its value. (A struct, not a std::pair: a
/// pair of a type still being defined is refused by clang's standard library checks.)
struct TomlEntry {
    std::string first;
    TomlValue second;
};

/// Parses @p content; errors read "FILE:LINE: message".
[[nodiscard]] Result<TomlValue> parseToml(const std::string &content, const QString &fileName);

} // namespace Sluice::Security

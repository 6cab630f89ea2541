# sluice_add_plugin(<target>
#                   METADATA <id>.json
#                   SOURCES <files>...
#                   [LINK_LIBRARIES <libs>...]
#                   [OUTPUT_DIRECTORY <dir>]
#                   [NO_INSTALL]
#                   [INSTALL_DESTINATION <dir>])
#
# Builds a Sluice plugin as a MODULE library: AUTOMOC on, hidden visibility, no undefined
# symbols, linked to Sluice::Core, and (unless NO_INSTALL) installed into the host's plugin
# directory (or INSTALL_DESTINATION). The METADATA file is the one named in
# Q_PLUGIN_METADATA(... FILE "...") or SLUICE_PLUGIN_CLASS_WITH_JSON(Class, "...")
# (sluice/pluginfactory.h): automoc is told that a file using that macro needs moc, and
# that its moc output depends on the JSON file it names.
function(sluice_add_plugin target)
    cmake_parse_arguments(ARG "NO_INSTALL" "METADATA;OUTPUT_DIRECTORY;INSTALL_DESTINATION"
                          "SOURCES;LINK_LIBRARIES" ${ARGN})
    if(NOT ARG_METADATA)
        message(FATAL_ERROR "sluice_add_plugin(${target}): METADATA <id>.json is required")
    endif()
    if(NOT ARG_SOURCES)
        message(FATAL_ERROR "sluice_add_plugin(${target}): SOURCES is required")
    endif()
    add_library(${target} MODULE ${ARG_SOURCES} ${ARG_METADATA})
    set_target_properties(${target} PROPERTIES
        AUTOMOC ON
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON
        PREFIX "")
    # moc expands SLUICE_PLUGIN_CLASS_WITH_JSON through the SDK header; automoc only has to
    # know that the macro means "run moc", and which JSON file the result embeds.
    set_property(TARGET ${target} APPEND PROPERTY AUTOMOC_MACRO_NAMES SLUICE_PLUGIN_CLASS_WITH_JSON)
    set_property(TARGET ${target} APPEND PROPERTY AUTOMOC_DEPEND_FILTERS
        SLUICE_PLUGIN_CLASS_WITH_JSON "SLUICE_PLUGIN_CLASS_WITH_JSON[ \t\n]*\\([^,]*,[ \t\n]*\"([^\"]+)\"")
    target_compile_features(${target} PRIVATE cxx_std_23)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
    if(TARGET Sluice::Core)
        target_link_libraries(${target} PRIVATE Sluice::Core ${ARG_LINK_LIBRARIES})
    else()
        target_link_libraries(${target} PRIVATE sluice-core ${ARG_LINK_LIBRARIES})
    endif()
    if(ARG_OUTPUT_DIRECTORY)
        set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
    elseif(DEFINED SLUICE_PLUGIN_OUTPUT_DIRECTORY)
        set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${SLUICE_PLUGIN_OUTPUT_DIRECTORY}")
    endif()
    if(NOT ARG_NO_INSTALL)
        if(ARG_INSTALL_DESTINATION)
            set(dest "${ARG_INSTALL_DESTINATION}")
        elseif(DEFINED SLUICE_INSTALL_PLUGINDIR)
            set(dest "${SLUICE_INSTALL_PLUGINDIR}")
        else()
            set(dest "${SLUICE_PLUGIN_INSTALL_DIR}")
        endif()
        install(TARGETS ${target} LIBRARY DESTINATION "${dest}")
    endif()
endfunction()

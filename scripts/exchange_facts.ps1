# salve-script: exchange_facts
# Read-only inventory of one Exchange server, answered as one JSON document (contract:
# FactsAnswer). Runs in plain Windows PowerShell 5.1; Exchange cmdlets (roles, DAG, component
# states) come from Exchange's management shell, loaded below; when it cannot be loaded the
# answer says why (exchange_management_error). Everything else comes from the registry, the
# file system and CIM. salve runs it as a scheduled task under the become account, whose logon
# reaches Active Directory (a WinRM logon cannot), which also serves the ADSI read at the end.
#
# The build is the ExSetup.exe file version assembled from its numeric parts
# (FileMajorPart.FileMinorPart.FileBuildPart.FilePrivatePart). AdminDisplayVersion is never used:
# it does not change when a security update is installed.

function Get-SalveRegValue([string] $Path, [string] $Name) {
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Name
}

function Get-SalveUninstallEntries {
    $roots = @(
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall',
        'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall'
    )
    foreach ($root in $roots) {
        if (Test-Path -LiteralPath $root) {
            Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue |
                ForEach-Object { Get-ItemProperty -LiteralPath $_.PSPath -ErrorAction SilentlyContinue } |
                Where-Object { $_.DisplayName }
        }
    }
}

function Get-SalvePendingReboot {
    $found = New-Object System.Collections.Generic.List[string]
    $sm = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager'
    # Decided by the values, not by their presence: an empty PendingFileRenameOperations list,
    # or UpdateExeVolatile Flags of 0, is left behind and means nothing is pending.
    $renames = @(Get-SalveRegValue $sm 'PendingFileRenameOperations' | Where-Object { $_ })
    if ($renames.Count -gt 0) {
        $found.Add("$sm\PendingFileRenameOperations")
    }
    foreach ($key in @(
            'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending',
            'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')) {
        if (Test-Path -LiteralPath $key) { $found.Add($key) }
    }
    $volatile = 'HKLM:\SOFTWARE\Microsoft\Updates\UpdateExeVolatile'
    $flags = Get-SalveRegValue $volatile 'Flags'
    if ($null -ne $flags -and [int] $flags -ne 0) { $found.Add("$volatile\Flags") }
    try {
        $ccm = Invoke-CimMethod -Namespace 'root\ccm\clientSDK' -ClassName 'CCM_ClientUtilities' `
            -MethodName 'DetermineIfRebootPending' -ErrorAction Stop
        if ($ccm.RebootPending -or $ccm.IsHardRebootPending) { $found.Add('root\ccm\clientSDK:CCM_ClientUtilities') }
    } catch {
        # No SCCM client on this server: nothing to add.
    }
    # Each marker is written on its own; the caller collects them with @( ).
    $found
}

Write-Output 'Reading Exchange setup, updates, services and prerequisites...'

$setupKey = 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup'
$legacyKey = 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v14\Setup'
$installPath = Get-SalveRegValue $setupKey 'MsiInstallPath'
$isLegacy = $false
if (-not $installPath) {
    $installPath = Get-SalveRegValue $legacyKey 'MsiInstallPath'
    $isLegacy = [bool] $installPath
}

$build = $null
$family = $null
if ($installPath) {
    $exSetup = Join-Path $installPath 'bin\ExSetup.exe'
    if (Test-Path -LiteralPath $exSetup) {
        $v = (Get-Item -LiteralPath $exSetup).VersionInfo
        $build = '{0}.{1}.{2}.{3}' -f $v.FileMajorPart, $v.FileMinorPart, $v.FileBuildPart, $v.FilePrivatePart
        $family = switch ('{0}.{1}' -f $v.FileMajorPart, $v.FileMinorPart) {
            '14.3' { 'Exchange 2010' }
            '15.0' { 'Exchange 2013' }
            '15.1' { 'Exchange 2016' }
            '15.2' { if ($v.FileBuildPart -ge 2562) { 'Exchange Server SE' } else { 'Exchange 2019' } }
            default { $null }
        }
    } else {
        Write-Output "ExSetup.exe is missing under $installPath`: setup did not complete the last time it ran"
        if ($isLegacy) { $family = 'Exchange 2010' }
    }
}

# Installed security updates: Uninstall entries and the Updates key (HealthChecker's source).
$uninstall = @(Get-SalveUninstallEntries)
$suEntries = @($uninstall | Where-Object { $_.DisplayName -like 'Security Update for Exchange Server*' } |
        ForEach-Object { [string] $_.DisplayName } | Sort-Object -Unique)
$packages = New-Object System.Collections.Generic.List[string]
foreach ($year in @('2010', '2013', '2016', '2019')) {
    $key = "HKLM:\SOFTWARE\Microsoft\Updates\Exchange $year"
    if (Test-Path -LiteralPath $key) {
        Get-ChildItem -LiteralPath $key -ErrorAction SilentlyContinue | ForEach-Object {
            $name = Get-SalveRegValue $_.PSPath 'PackageName'
            if ($name) { $packages.Add([string] $name) }
        }
    }
}
$kbs = @(@($suEntries) + @($packages) | ForEach-Object {
        [regex]::Matches($_, 'KB[0-9]{7}') | ForEach-Object { $_.Value.ToUpperInvariant() }
    } | Sort-Object -Unique)

function Get-SalveVersionOf([string] $Pattern) {
    $hit = $uninstall | Where-Object { $_.DisplayName -like $Pattern } |
        Sort-Object {
            $v = $null
            if ([version]::TryParse(([string] $_.DisplayVersion -replace '[^0-9.]', ''), [ref] $v)) { $v } else { [version] '0.0' }
        } -Descending |
        Select-Object -First 1
    if ($hit) { return [string] $hit.DisplayVersion }
    return $null
}

$dotnet = Get-SalveRegValue 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full' 'Release'
$ucma = Get-SalveRegValue 'HKLM:\SOFTWARE\Microsoft\UCMA\{902F4F35-D5DC-4363-8671-D5EF0D26C21D}' 'Version'
$rewrite = Get-SalveRegValue 'HKLM:\SOFTWARE\Microsoft\IIS Extensions\URL Rewrite' 'Version'

# The two EOMT rules on the Default Web Site.
$eomtRules = @('X-AnonResource-Backend Abort - inbound', 'X-BEResource Abort - inbound')
$rulesPresent = @()
try {
    Import-Module WebAdministration -ErrorAction Stop
    $names = @(Get-WebConfigurationProperty -PSPath 'IIS:\Sites\Default Web Site' `
            -Filter 'system.webServer/rewrite/rules/rule' -Name 'name' -ErrorAction Stop |
            ForEach-Object { [string] $_.Value })
    $rulesPresent = @($eomtRules | Where-Object { $names -contains $_ })
} catch {
    Write-Output "URL Rewrite rules not readable: $($_.Exception.Message)"
}

# Services an Exchange CU or SU stops and disables besides those named "Microsoft Exchange*",
# and leaves Disabled when it fails: IIS, WMI, Remote Registry, Performance Logs & Alerts,
# Application Identity, filtering management, search tracing.
$salveServices = @('W3SVC', 'IISADMIN', 'WAS', 'Winmgmt', 'RemoteRegistry', 'pla', 'AppIDSvc', 'FMS', 'SearchExchangeTracing')
$services = @(Get-Service -ErrorAction SilentlyContinue | Where-Object {
        $_.DisplayName -like 'Microsoft Exchange*' -or $_.Name -in $salveServices
    } | ForEach-Object {
        [ordered]@{
            name         = [string] $_.Name
            display_name = [string] $_.DisplayName
            start_type   = [string] $_.StartType
            status       = [string] $_.Status
        }
    })

$systemDrive = Get-CimInstance -ClassName Win32_LogicalDisk -Filter ("DeviceID='{0}'" -f $env:SystemDrive)
$installDrive = $systemDrive
if ($installPath) {
    $letter = (Split-Path -Qualifier $installPath)
    $installDrive = Get-CimInstance -ClassName Win32_LogicalDisk -Filter ("DeviceID='{0}'" -f $letter)
}
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$bootId = $os.LastBootUpTime.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')

# Exchange's own view, through its management shell (Mailbox/CAS servers).
$roles = @()
$dag = $null
$copies = @()
$components = @()
$clusterNode = $null
$activationPolicy = $null
$authExpiry = $null
$managementError = $null
if ($installPath -and -not $isLegacy) {
    # Exchange's own management shell, loaded the supported way, as Microsoft's CSS-Exchange scripts
    # load it (Shared/Confirm-ExchangeShell.ps1): RemoteExchange.ps1 and Connect-ExchangeServer
    # -Auto, a Remote PowerShell session to this server under RBAC (the snap-in would bypass RBAC).
    # An Edge Transport server has no Remote PowerShell: there, the snap-ins its exShell.psc1 lists
    # and Exchange.ps1. Either reaches Active Directory as this process's account, so salve runs
    # this script where that account has network credentials (a scheduled task under `become`).
    try {
        if (-not (Get-Command Get-ExchangeServer -ErrorAction SilentlyContinue)) {
            # Microsoft's scripts run with their own error preference, not the prelude's 'Stop'
            # (scripts/README.md, rule 3): a harmless error while they load must not stop them.
            $salvePreference = $ErrorActionPreference
            $ErrorActionPreference = 'Continue'
            try {
                if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\EdgeTransportRole') {
                    [xml] $exShell = Get-Content -LiteralPath (Join-Path $env:ExchangeInstallPath 'Bin\exShell.psc1') -ErrorAction Stop
                    foreach ($snapIn in $exShell.PSConsoleFile.PSSnapIns.PSSnapIn) { Add-PSSnapin -Name $snapIn.Name -ErrorAction Stop }
                    . (Join-Path $env:ExchangeInstallPath 'bin\Exchange.ps1')
                } else {
                    . (Join-Path $env:ExchangeInstallPath 'bin\RemoteExchange.ps1')
                    Connect-ExchangeServer -Auto -ClientApplication:ManagementShell
                }
            } finally {
                $ErrorActionPreference = $salvePreference
            }
        }
        if (-not (Get-Command Get-ExchangeServer -ErrorAction SilentlyContinue)) {
            $why = if ($Error.Count -gt 0) { [string] $Error[0] } else { 'Connect-ExchangeServer found no server' }
            throw "Exchange's management shell could not be loaded: $why"
        }
        $server = Get-ExchangeServer -Identity $env:COMPUTERNAME -ErrorAction Stop
        $roles = @(([string] $server.ServerRole) -split ',\s*' | Where-Object { $_ })
        $components = @(Get-ServerComponentState -Identity $env:COMPUTERNAME | ForEach-Object {
                $latest = @($_.LocalStates) + @($_.RemoteStates) | Sort-Object Timestamp -Descending
                [ordered]@{
                    component  = [string] $_.Component
                    state      = [string] $_.State
                    requesters = @($latest | Where-Object { [string] $_.State -ne 'Active' } |
                            ForEach-Object { [string] $_.Requester } | Sort-Object -Unique)
                }
            })
        if ($server.IsMailboxServer) {
            $mbx = Get-MailboxServer -Identity $env:COMPUTERNAME
            # A standalone server's mounted databases are listed too: they cannot move, nor can a
            # DAG member's database with no other copy (`copies` 1). The status list is read
            # whole before Get-MailboxDatabase runs: Exchange's remote session runs one pipeline
            # at a time ("Pipelines cannot be executed concurrently").
            $copyStatus = @(Get-MailboxDatabaseCopyStatus -Server $env:COMPUTERNAME)
            $copies = @(foreach ($c in $copyStatus) {
                    [ordered]@{
                        database             = [string] $c.DatabaseName
                        active               = ([string] $c.Status -eq 'Mounted')
                        status               = [string] $c.Status
                        copy_queue_length    = [uint64] $c.CopyQueueLength
                        replay_queue_length  = [uint64] $c.ReplayQueueLength
                        activation_suspended = [bool] $c.ActivationSuspended
                        copies               = @((Get-MailboxDatabase -Identity ([string] $c.DatabaseName)).DatabaseCopies).Count
                    }
                })
            if ($mbx.DatabaseAvailabilityGroup) {
                $dag = [string] $mbx.DatabaseAvailabilityGroup
                $activationPolicy = [string] $mbx.DatabaseCopyAutoActivationPolicy
                try {
                    $clusterNode = [string] (Get-ClusterNode -Name $env:COMPUTERNAME -ErrorAction Stop).State
                } catch {
                    Write-Output "Cluster node state not readable: $($_.Exception.Message)"
                }
            }
        }
        $auth = Get-AuthConfig
        if ($auth.CurrentCertificateThumbprint) {
            $cert = Get-ChildItem -LiteralPath ("Cert:\LocalMachine\My\{0}" -f $auth.CurrentCertificateThumbprint) -ErrorAction SilentlyContinue
            if ($cert) { $authExpiry = $cert.NotAfter.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ') }
        }
    } catch {
        # Roles, DAG and components stay unread: salve stops the host rather than treat it as a
        # standalone server with no roles.
        $managementError = [string] $_.Exception.Message
        Write-Output "Exchange cmdlets not available ($managementError); roles, DAG and components not read"
    }
}

# An Exchange installer still running (e.g. started by a run that was cut off): Setup.exe in
# upgrade mode, msiexec applying an Exchange .msp, or anything run from salve's own package
# folder (C:\salve\updates\KB5000871.msp names no "Exchange"; a .NET installer there is not
# msiexec). Another install must wait for it.
$installInProgress = $null
$installers = @(Get-CimInstance -ClassName Win32_Process -ErrorAction SilentlyContinue | Where-Object {
        $_.Name -in @('msiexec.exe', 'Setup.exe', 'ExSetup.exe') -or [string] $_.CommandLine -match '(?i)\\salve\\updates\\'
    })
foreach ($p in $installers) {
    $line = [string] $p.CommandLine
    if ($line -match '(?i)/mode:upgrade' -or $line -match '(?i)exchange.*\.msp' -or $line -match '(?i)\\salve\\updates\\') {
        $installInProgress = $line
        break
    }
}

# salve's own detached steps (job_control): running, or finished and not yet collected. A later
# run attaches to them instead of starting a second install.
$salveJobs = New-Object System.Collections.Generic.List[object]
foreach ($task in @(Get-ScheduledTask -TaskPath '\salve\' -ErrorAction SilentlyContinue)) {
    $jobScript = Join-Path $env:ProgramData ('salve\jobs\{0}\script.ps1' -f $task.TaskName)
    $first = if (Test-Path -LiteralPath $jobScript) { [string] (Get-Content -LiteralPath $jobScript -TotalCount 1) } else { '' }
    $info = Get-ScheduledTaskInfo -TaskPath '\salve\' -TaskName $task.TaskName
    $running = [string] $task.State -eq 'Running' -or $info.LastTaskResult -in @(267009, 267011)
    $salveJobs.Add([ordered]@{
            job       = [string] $task.TaskName
            script_id = ($first -replace '^# salve-script: ', '').Trim()
            state     = if ($running) { 'running' } else { 'finished' }
        })
}

# The configuration security fixes depend on (contract: ExchangeConfigFacts). Self-contained:
# SettingOverrides (Get-SettingOverride, 2016 and later), Extended Protection on the Default Web
# Site's front-end virtual directories (tokenChecking Require or Allow on every one, as
# CSS-Exchange's ExchangeExtendedProtectionManagement.ps1 configures it), the Emergency
# Mitigation service (MSExchangeMitigation; MitigationsEnabled on the organisation and the
# server; MitigationsApplied / MitigationsBlocked) and the outbound URL Rewrite rules on
# Default Web Site/owa (where EOMT puts the CVE-2026-42897 rule). Needs Exchange's management
# shell (loaded above); anything unreadable is reported as not read (null).
function Get-SalveFixConfig([bool] $ExchangeCmdlets) {
    $overrides = $null
    $mitigation = $null
    if ($ExchangeCmdlets -and (Get-Command Get-SettingOverride -ErrorAction SilentlyContinue)) {
        $overrides = @(Get-SettingOverride -ErrorAction SilentlyContinue | ForEach-Object {
                [ordered]@{
                    name       = [string] $_.Name
                    component  = [string] $_.ComponentName
                    section    = [string] $_.SectionName
                    parameters = @($_.Parameters | ForEach-Object { [string] $_ })
                }
            })
    }
    $service = Get-Service -Name MSExchangeMitigation -ErrorAction SilentlyContinue
    if ($service -and $ExchangeCmdlets) {
        $org = Get-OrganizationConfig -ErrorAction SilentlyContinue
        $server = Get-ExchangeServer -Identity $env:COMPUTERNAME -ErrorAction SilentlyContinue
        $mitigation = [ordered]@{
            service_present     = $true
            service_running     = ([string] $service.Status -eq 'Running')
            mitigations_enabled = [bool] ($org.MitigationsEnabled -and $server.MitigationsEnabled)
            applied             = @($server.MitigationsApplied | ForEach-Object { [string] $_ })
            blocked             = @($server.MitigationsBlocked | ForEach-Object { [string] $_ })
        }
    }
    $protection = $null
    if (Get-Command Get-WebConfigurationProperty -ErrorAction SilentlyContinue) {
        $vdirs = 'owa', 'ecp', 'EWS', 'Autodiscover', 'Microsoft-Server-ActiveSync', 'OAB', 'mapi', 'Rpc'
        $checks = @($vdirs | ForEach-Object {
                [string] (Get-WebConfigurationProperty -PSPath 'IIS:\' -Location "Default Web Site/$_" `
                        -Filter 'system.webServer/security/authentication/windowsAuthentication' `
                        -Name 'extendedProtection.tokenChecking' -ErrorAction SilentlyContinue)
            })
        $read = @($checks | Where-Object { $_ })
        if ($read.Count -eq $vdirs.Count) {
            $protection = -not ($read | Where-Object { $_ -notin @('Require', 'Allow') })
        }
    }
    $outbound = @()
    if (Get-Command Get-WebConfigurationProperty -ErrorAction SilentlyContinue) {
        $outbound = @(Get-WebConfigurationProperty -PSPath 'IIS:\Sites\Default Web Site\owa' `
                -Filter 'system.webServer/rewrite/outboundRules/rule' -Name 'name' -ErrorAction SilentlyContinue |
                ForEach-Object { [string] $_.Value })
    }
    [ordered]@{
        setting_overrides    = $overrides
        extended_protection  = $protection
        emergency_mitigation = $mitigation
        outbound_rules       = $outbound
    }
}

# The forest's Exchange AD versions, as CSS-Exchange's SetupAssist reads them: the schema's
# ms-Exch-Schema-Version-Pt rangeUpper (/PrepareSchema) and the organisation container's
# objectVersion (/PrepareAD). Null when Active Directory is not readable from this logon.
function Get-SalveAdVersions {
    try {
        $rootDse = [ADSI]'LDAP://RootDSE'
        $schemaNc = [string] $rootDse.schemaNamingContext
        $configNc = [string] $rootDse.configurationNamingContext
        $schema = ([ADSI]"LDAP://CN=ms-Exch-Schema-Version-Pt,$schemaNc").rangeUpper
        $searcher = New-Object DirectoryServices.DirectorySearcher([ADSI]"LDAP://CN=Microsoft Exchange,CN=Services,$configNc", '(objectClass=msExchOrganizationContainer)')
        $searcher.SearchScope = 'OneLevel'
        $org = $searcher.FindOne()
        if ($null -eq $schema -or $null -eq $org) { return $null }
        return [ordered]@{
            forest = [string] $rootDse.rootDomainNamingContext
            schema = [uint32] [string] $schema
            org    = [uint32] [string] $org.Properties['objectversion'][0]
        }
    } catch {
        return $null
    }
}

$answer = [ordered]@{
    computer_name           = [string] $env:COMPUTERNAME
    family                  = $family
    build                   = $build
    installed_kbs           = @($kbs)
    uninstall_entries       = @($suEntries)
    update_packages         = @($packages.ToArray())
    roles                   = @($roles)
    dag                     = $dag
    database_copies         = @($copies)
    component_states        = @($components)
    services                = @($services)
    dotnet_release          = if ($dotnet) { [uint32] $dotnet } else { [uint32] 0 }
    vcredist_2012           = Get-SalveVersionOf 'Microsoft Visual C++ 2012*'
    vcredist_2013           = Get-SalveVersionOf 'Microsoft Visual C++ 2013*'
    ucma                    = if ($ucma) { [string] $ucma } else { $null }
    url_rewrite             = if ($rewrite) { [string] $rewrite } else { $null }
    mitigation_rules        = @($rulesPresent)
    pending_reboot          = @(Get-SalvePendingReboot)
    free_disk_bytes         = if ($installDrive) { [uint64] $installDrive.FreeSpace } else { [uint64] 0 }
    auth_certificate_expiry = $authExpiry
    cluster_node_state      = $clusterNode
    activation_policy       = $activationPolicy
    boot_id                 = $bootId
    install_in_progress     = $installInProgress
    salve_jobs              = $salveJobs.ToArray()
    exchange_management_error = $managementError
    config                  = Get-SalveFixConfig ($installPath -and -not $isLegacy)
    ad                      = Get-SalveAdVersions
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))

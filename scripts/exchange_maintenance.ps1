# salve-script: exchange_maintenance
# Put this Exchange server into maintenance mode or take it out again, DAG-aware, in the order of
# Microsoft's DAG maintenance procedure (contract: MaintenanceRequest -> MaintenanceAnswer).
#
# Enter: first record what the server looks like (components per requester, activation policy,
# per-copy ActivationSuspended, cluster node, whether it is in maintenance already) in
# C:\salve\maintenance.json; then HubTransport Draining + transport restart; UMCallRouter
# Draining (2016 with UM); for a DAG member StartDagServerMaintenance.ps1 -PauseClusterNode;
# Redirect-Message to a peer (never this server); ServerWideOffline Inactive. A step that fails
# rolls back the steps taken, last first, and restores the record. Mounted databases with no
# other copy (standalone servers, single-copy databases) cannot move: they stay mounted and are
# answered as outage_databases.
# Leave: with the record (from the controller, else the host's copy) undo only what is still
# held: ServerWideOffline, UMCallRouter, StopDagServerMaintenance.ps1 while the node is paused
# or activation blocked by maintenance, HubTransport + transport restart; then restore the
# recorded activation policy and per-copy suspension (StopDagServerMaintenance resets both).
# A second leave finds nothing held and changes nothing. Without a record, leave changes nothing.

$requester = 'Maintenance'
$server = $env:COMPUTERNAME
$recordPath = 'C:\salve\maintenance.json'
$steps = New-Object System.Collections.Generic.List[string]
$moved = New-Object System.Collections.Generic.List[object]
$outage = @()
$reason = $null
$record = $null
$judgeGates = $true

# Both functions write their items one by one; callers collect them with @( ).
function Get-SalveComponents {
    Get-ServerComponentState -Identity $server | ForEach-Object {
        $latest = @($_.LocalStates) + @($_.RemoteStates) | Sort-Object Timestamp -Descending
        [ordered]@{
            component  = [string] $_.Component
            state      = [string] $_.State
            requesters = @($latest | Where-Object { [string] $_.State -ne 'Active' } |
                    ForEach-Object { [string] $_.Requester } | Sort-Object -Unique)
        }
    }
}

function Get-SalveCopies {
    Get-MailboxDatabaseCopyStatus -Server $server -ErrorAction SilentlyContinue
}

function Get-SalveClusterNode {
    try { return [string] (Get-ClusterNode -Name $server -ErrorAction Stop).State } catch { return $null }
}

# The component is held down by the Maintenance requester.
function Test-SalveHeld([string] $Component) {
    $c = Get-ServerComponentState -Identity $server -Component $Component -ErrorAction SilentlyContinue
    if (-not $c) { return $false }
    $mine = @($c.LocalStates | Where-Object { [string] $_.Requester -eq $requester } | Sort-Object Timestamp -Descending)
    return ($mine.Count -gt 0 -and [string] $mine[0].State -ne 'Active')
}

function Add-SalveStep([string] $What) {
    Write-Output $What
    $script:steps.Add($What)
}

function New-SalveRecord {
    $mbx = if ($isDagMember) { Get-MailboxServer -Identity $server } else { $null }
    [ordered]@{
        already_in_maintenance = [bool] (Test-SalveHeld 'ServerWideOffline')
        activation_policy      = if ($mbx) { [string] $mbx.DatabaseCopyAutoActivationPolicy } else { $null }
        activation_suspended   = @(Get-SalveCopies | Where-Object { $_.ActivationSuspended } | ForEach-Object { [string] $_.DatabaseName })
        cluster_node_state     = if ($isDagMember) { Get-SalveClusterNode } else { $null }
        component_states       = @(Get-SalveComponents)
        recorded_at            = [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ')
    }
}

function Read-SalveRecord {
    if (Test-Path -LiteralPath $recordPath) { return (Get-Content -LiteralPath $recordPath -Raw | ConvertFrom-Json) }
    return $null
}

# Undo what maintenance still holds and restore the record; each step only when needed, so a
# second call changes nothing.
function Invoke-SalveUndo($Record, [string] $Prefix) {
    if (Test-SalveHeld 'ServerWideOffline') {
        Add-SalveStep ($Prefix + 'Set-ServerComponentState ServerWideOffline Active')
        Set-ServerComponentState -Identity $server -Component ServerWideOffline -State Active -Requester $requester
    }
    if (Test-SalveHeld 'UMCallRouter') {
        Add-SalveStep ($Prefix + 'Set-ServerComponentState UMCallRouter Active')
        Set-ServerComponentState -Identity $server -Component UMCallRouter -State Active -Requester $requester
    }
    if ($isDagMember) {
        $mbx = Get-MailboxServer -Identity $server
        $pausedByUs = (Get-SalveClusterNode) -eq 'Paused' -and [string] $Record.cluster_node_state -ne 'Paused'
        $blockedByUs = ([string] $mbx.DatabaseCopyAutoActivationPolicy -eq 'Blocked' -and [string] $Record.activation_policy -ne 'Blocked') -or
            [bool] $mbx.DatabaseCopyActivationDisabledAndMoveNow
        if ($pausedByUs -or $blockedByUs) {
            Add-SalveStep ($Prefix + 'StopDagServerMaintenance.ps1')
            & {
                $ErrorActionPreference = 'Continue'
                & (Join-Path $exScripts 'StopDagServerMaintenance.ps1') -ServerName $server
            }
        }
    }
    if (Test-SalveHeld 'HubTransport') {
        Add-SalveStep ($Prefix + 'Set-ServerComponentState HubTransport Active')
        Set-ServerComponentState -Identity $server -Component HubTransport -State Active -Requester $requester
        Add-SalveStep ($Prefix + 'Restart-Service MSExchangeTransport')
        Restart-Service -Name MSExchangeTransport
    }
    if ($isDagMember) {
        $policy = [string] $Record.activation_policy
        if ($policy -and [string] (Get-MailboxServer -Identity $server).DatabaseCopyAutoActivationPolicy -ne $policy) {
            Add-SalveStep ($Prefix + "Set-MailboxServer -DatabaseCopyAutoActivationPolicy $policy")
            Set-MailboxServer -Identity $server -DatabaseCopyAutoActivationPolicy $policy
        }
        foreach ($copy in @(Get-SalveCopies)) {
            $db = [string] $copy.DatabaseName
            if (@($Record.activation_suspended) -contains $db -and -not $copy.ActivationSuspended) {
                Add-SalveStep ($Prefix + "Suspend-MailboxDatabaseCopy $db -ActivationOnly")
                Suspend-MailboxDatabaseCopy -Identity "$db\$server" -ActivationOnly -Confirm:$false
            }
        }
    }
    Remove-Item -LiteralPath $recordPath -ErrorAction SilentlyContinue
}

# The given target unless it names this server (Exchange refuses that), else a peer in this AD
# site, DAG members first, that is not in maintenance and has HubTransport Active.
function Get-SalveRedirectTarget {
    $given = [string] $SalveArgs.redirect_target
    if ($given -and $given.Split('.')[0] -ne $server) { return $given }
    $site = [string] $exchangeServer.Site
    $dagPeers = @()
    if ($isDagMember) {
        $dagPeers = @((Get-DatabaseAvailabilityGroup -Identity $mbxBefore.DatabaseAvailabilityGroup).Servers | ForEach-Object { [string] $_.Name })
    }
    $candidates = @(Get-ExchangeServer | Where-Object { $_.Name -ne $server -and $_.IsHubTransportServer -and [string] $_.Site -eq $site })
    $ordered = @($candidates | Where-Object { $dagPeers -contains $_.Name }) + @($candidates | Where-Object { $dagPeers -notcontains $_.Name })
    foreach ($peer in $ordered) {
        $swo = [string] (Get-ServerComponentState -Identity $peer.Name -Component ServerWideOffline).State
        $hub = [string] (Get-ServerComponentState -Identity $peer.Name -Component HubTransport).State
        if ($swo -eq 'Active' -and $hub -eq 'Active') { return [string] $peer.Fqdn }
    }
    return $null
}

function Write-SalveAnswer([bool] $Success) {
    $mbx = if ($isDagMember) { Get-MailboxServer -Identity $server } else { $null }
    $components = @(Get-SalveComponents)
    $copies = @(Get-SalveCopies)
    $node = if ($isDagMember) { Get-SalveClusterNode } else { $null }
    $active = @($components | Where-Object { $_.state -eq 'Active' } | ForEach-Object { $_.component })
    $byDesign = @('ForwardSyncDaemon', 'ProvisioningRps')
    $gates = [ordered]@{
        no_active_copies         = (@($copies | Where-Object { [string] $_.Status -eq 'Mounted' -and $outage -notcontains [string] $_.DatabaseName }).Count -eq 0)
        components_as_expected   = $false
        cluster_node_as_expected = $true
        copies_healthy           = (@($copies | Where-Object { [string] $_.Status -notin @('Mounted', 'Healthy') }).Count -eq 0)
    }
    if ($SalveArgs.action -eq 'enter') {
        $gates.components_as_expected = (@($active | Where-Object { $_ -notin @('Monitoring', 'RecoveryActionsEnabled') }).Count -eq 0)
        if ($isDagMember) { $gates.cluster_node_as_expected = ($node -eq 'Paused') }
    } else {
        $gates.components_as_expected = (@($components | Where-Object { $_.state -ne 'Active' -and $_.component -notin $byDesign }).Count -eq 0)
        if ($isDagMember) { $gates.cluster_node_as_expected = ($node -eq 'Up') }
    }
    if ($Success -and $judgeGates) {
        $failedGates = @('components_as_expected', 'cluster_node_as_expected') | Where-Object { -not $gates[$_] }
        if ($SalveArgs.action -eq 'enter' -and -not $gates.no_active_copies) { $failedGates = @($failedGates) + 'no_active_copies' }
        if (@($failedGates).Count -gt 0) {
            $Success = $false
            $script:reason = 'gates not met after ' + $SalveArgs.action + ': ' + (@($failedGates) -join ', ')
        }
    }
    $answer = [ordered]@{
        changed            = ($steps.Count -gt 0)
        success            = [bool] $Success
        reason             = $script:reason
        record             = $record
        activation_policy  = if ($mbx) { [string] $mbx.DatabaseCopyAutoActivationPolicy } else { $null }
        component_states   = @($components)
        moved_databases    = @($moved.ToArray())
        outage_databases   = @($outage)
        steps              = @($steps.ToArray())
        cluster_node_state = $node
        gates              = $gates
    }
    Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
    if (-not $Success) { exit 1 }
}

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
} catch {
    [Console]::Error.WriteLine([string] $_.Exception.Message)
    exit 1
}
$installPath = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath').MsiInstallPath
$exScripts = Join-Path $installPath 'Scripts'
$exchangeServer = Get-ExchangeServer -Identity $server
$isDagMember = $false
$mbxBefore = $null
if ($exchangeServer.IsMailboxServer) {
    $mbxBefore = Get-MailboxServer -Identity $server
    $isDagMember = [bool] $mbxBefore.DatabaseAvailabilityGroup
}
# `Version 15.1 (Build …)` whether the version arrives as an object or, through Exchange's
# remote session, as its string.
$usesUm = ([string] $exchangeServer.AdminDisplayVersion -match '^Version 15\.1 ') -and ([string] $exchangeServer.ServerRole -match 'UnifiedMessaging|Mailbox') -and
    (Get-Service -Name 'MSExchangeUMCR' -ErrorAction SilentlyContinue)

if ($SalveArgs.action -eq 'enter') {
    # Mounted databases nothing can take over: no other copy anywhere. The list is read whole
    # before Get-MailboxDatabase runs: Exchange's remote session runs one pipeline at a time.
    $mounted = @(Get-SalveCopies | Where-Object { [string] $_.Status -eq 'Mounted' } | ForEach-Object { [string] $_.DatabaseName })
    $outage = @(foreach ($db in $mounted) {
            if (@((Get-MailboxDatabase -Identity $db).DatabaseCopies).Count -le 1) { $db }
        })
    $record = Read-SalveRecord
    if ($record) {
        Write-Output "already in maintenance: entered by salve at $($record.recorded_at), its record kept"
    } else {
        $record = New-SalveRecord
        $null = New-Item -ItemType Directory -Force -Path (Split-Path $recordPath)
        ConvertTo-Json -InputObject $record -Depth 8 | Set-Content -LiteralPath $recordPath -Encoding UTF8
        if ($record.already_in_maintenance) {
            Write-Output 'already in maintenance before salve: recorded so, nothing changed'
        } else {
            foreach ($db in $outage) { Write-Output "$db has no other copy: it stays mounted here (planned outage)" }
            try {
                Add-SalveStep 'Set-ServerComponentState HubTransport Draining'
                Set-ServerComponentState -Identity $server -Component HubTransport -State Draining -Requester $requester
                Add-SalveStep 'Restart-Service MSExchangeTransport'
                Restart-Service -Name MSExchangeTransport
                if ($usesUm) {
                    Add-SalveStep 'Set-ServerComponentState UMCallRouter Draining'
                    Set-ServerComponentState -Identity $server -Component UMCallRouter -State Draining -Requester $requester
                }
                if ($isDagMember) {
                    $activeBefore = @(Get-SalveCopies | Where-Object { [string] $_.Status -eq 'Mounted' } | ForEach-Object { [string] $_.DatabaseName })
                    Add-SalveStep 'StartDagServerMaintenance.ps1 -PauseClusterNode'
                    # Microsoft's script inherits the caller's preference: under the prelude's
                    # 'Stop' its first non-terminating error would end it half way.
                    & {
                        $ErrorActionPreference = 'Continue'
                        & (Join-Path $exScripts 'StartDagServerMaintenance.ps1') -ServerName $server -MoveComment $requester -PauseClusterNode
                    }
                    foreach ($db in $activeBefore) {
                        $now = [string] (Get-MailboxDatabase -Identity $db -Status).MountedOnServer
                        if ($now.Split('.')[0] -ne $server) {
                            $moved.Add([ordered]@{ database = $db; from = $server; to = $now })
                            Write-Output "Moved $db to $now"
                        }
                    }
                    # It undoes itself on failure: check that it did its work.
                    $left = @(Get-SalveCopies | Where-Object { [string] $_.Status -eq 'Mounted' -and $outage -notcontains [string] $_.DatabaseName })
                    if ((Get-SalveClusterNode) -ne 'Paused' -or $left.Count -gt 0) {
                        throw ('StartDagServerMaintenance did not complete: ' + (@($left | ForEach-Object { [string] $_.DatabaseName }) -join ', ') + ' still active, cluster node ' + (Get-SalveClusterNode))
                    }
                }
                if ($SalveArgs.redirect_target -and ([string] $SalveArgs.redirect_target).Split('.')[0] -eq $server) {
                    Write-Output 'the redirect target given is this server: choosing a peer instead'
                }
                $target = Get-SalveRedirectTarget
                if ($target) {
                    Add-SalveStep "Redirect-Message -Target $target"
                    Redirect-Message -Server $server -Target $target -Confirm:$false
                } else {
                    Write-Output 'No other transport server found: queued mail stays on this server'
                }
                Add-SalveStep 'Set-ServerComponentState ServerWideOffline Inactive -Requester Maintenance'
                Set-ServerComponentState -Identity $server -Component ServerWideOffline -State Inactive -Requester $requester
            } catch {
                $script:reason = "entering maintenance failed at '$($steps[$steps.Count - 1])': $($_.Exception.Message); the steps taken were rolled back"
                [Console]::Error.WriteLine($reason)
                Write-Output 'entering failed: rolling back the steps taken'
                try { Invoke-SalveUndo $record 'rollback: ' } catch { $script:reason += "; rollback failed: $($_.Exception.Message)" }
                Write-SalveAnswer $false
            }
        }
    }
} elseif ($SalveArgs.action -eq 'leave') {
    $record = if ($SalveArgs.record) { $SalveArgs.record } else { Read-SalveRecord }
    if (-not $record) {
        $judgeGates = $false
        if (Test-SalveHeld 'ServerWideOffline') {
            Write-Output 'in maintenance, but not by salve (nothing recorded): left as it is'
        } else {
            Write-Output 'not in maintenance and nothing recorded: nothing to undo'
        }
    } elseif ($record.already_in_maintenance) {
        $judgeGates = $false
        Write-Output 'in maintenance before salve came: left in maintenance'
        Remove-Item -LiteralPath $recordPath -ErrorAction SilentlyContinue
    } else {
        try {
            Invoke-SalveUndo $record ''
        } catch {
            $script:reason = $_.Exception.Message
            [Console]::Error.WriteLine($reason)
            Write-SalveAnswer $false
        }
        if ($steps.Count -eq 0) { Write-Output 'nothing left to undo: already out of maintenance' }
    }
} else {
    [Console]::Error.WriteLine("action must be 'enter' or 'leave', got '$($SalveArgs.action)'")
    exit 1
}
Write-SalveAnswer $true
